package gpustat

import (
	"reflect"
	"testing"
)

// Outputs captured from nvidia-smi (driver 550) on an H100 host, an A100 with MIG enabled and an L4, with and
// without nounits.
func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		out  string
		want []Stat
		bad  bool
	}{
		{name: "nounits, two GPUs", out: "GPU-5d3c5a2e-7a39-2f61-11b0-3e2d6b9c1a40, 87, 61234, 81559\nGPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9, 0, 4, 81559\n",
			want: []Stat{{UUID: "GPU-5d3c5a2e-7a39-2f61-11b0-3e2d6b9c1a40", UtilizationPct: 87, MemoryUsedMiB: 61234, MemoryTotalMiB: 81559},
				{UUID: "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", UtilizationPct: 0, MemoryUsedMiB: 4, MemoryTotalMiB: 81559}}},
		{name: "with units", out: "GPU-11111111-2222-3333-4444-555555555555, 42 %, 1024 MiB, 23034 MiB\n",
			want: []Stat{{UUID: "GPU-11111111-2222-3333-4444-555555555555", UtilizationPct: 42, MemoryUsedMiB: 1024, MemoryTotalMiB: 23034}}},
		{name: "MIG: utilisation not reported", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, [N/A], 13, 40960\n",
			want: []Stat{{UUID: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", UtilizationPct: -1, MemoryUsedMiB: 13, MemoryTotalMiB: 40960}}},
		{name: "not supported memory", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 5, [Not Supported], [Not Supported]\n",
			want: []Stat{{UUID: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", UtilizationPct: 5}}},
		{name: "blank lines", out: "\n\n", want: nil},
		{name: "error text", out: "No devices were found\n", bad: true},
		{name: "missing column", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 5, 10\n", bad: true},
		{name: "not a number", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, busy, 10, 20\n", bad: true},
		{name: "over 100 percent", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 101, 10, 20\n", bad: true},
		{name: "negative memory", out: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, 1, -10, 20\n", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.out))
			if tc.bad {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
