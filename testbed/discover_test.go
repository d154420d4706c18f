package testbed

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tamarack-ai/tamarack/testbed/backend/local/cdi"
)

// TestDiscoverGPUs: the GPUs of a host come from nvidia-smi, checked against its CDI specs (the real spec
// of an H200 host here); nvidia-smi is found where the spec mounts it from when it is not in PATH.
func TestDiscoverGPUs(t *testing.T) {
	t.Parallel()
	fixture, err := filepath.Abs("backend/local/cdi/testdata")
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "GPU-f99132a9-66f1-44ad-bbae-b611c477a08b"
	h200 := uuid + ", NVIDIA H200, 143771\n"
	inPath := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	// Only the driver's own folder has it, as on the host the fixture comes from.
	driverOnly := func(name string) (string, error) {
		if name == "/usr/local/nvidia/bin/nvidia-smi" {
			return name, nil
		}
		return "", exec.ErrNotFound
	}
	nowhere := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		specs    string // CDI spec directory; "" for none
		lookPath func(string) (string, error)
		smiOut   string
		want     []DeviceInput
		wantSMI  string // the nvidia-smi that ran
		wantErr  string
	}{
		{name: "H200 with its CDI spec", specs: fixture, lookPath: inPath, smiOut: "0, " + h200,
			want: []DeviceInput{{Index: 0, UUID: uuid, GPUModel: "h200-141gb", MemoryMiB: 143771}}, wantSMI: "/usr/bin/nvidia-smi"},
		{name: "nvidia-smi from the CDI spec's driver folder", specs: fixture, lookPath: driverOnly, smiOut: "0, " + h200,
			want: []DeviceInput{{Index: 0, UUID: uuid, GPUModel: "h200-141gb", MemoryMiB: 143771}}, wantSMI: "/usr/local/nvidia/bin/nvidia-smi"},
		{name: "without CDI specs nvidia-smi alone decides", lookPath: inPath, smiOut: "0, " + h200,
			want: []DeviceInput{{Index: 0, UUID: uuid, GPUModel: "h200-141gb", MemoryMiB: 143771}}, wantSMI: "/usr/bin/nvidia-smi"},
		{name: "a GPU the CDI spec lacks", specs: fixture, lookPath: inPath,
			smiOut:  "0, " + h200 + "1, GPU-0000, NVIDIA H200, 143771\n",
			wantErr: "GPU 1 (GPU-0000) has no device in the CDI specs"},
		{name: "a CDI spec but no nvidia-smi", specs: fixture, lookPath: nowhere, wantErr: "nvidia-smi, which names their model, is not found"},
		{name: "no GPU at all", lookPath: nowhere},
		{name: "a product the testbed does not know", lookPath: inPath, smiOut: "0, GPU-1, Tesla K80, 11441\n", wantErr: "not a known model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.specs
			if dir == "" {
				dir = t.TempDir()
			}
			reg, err := cdi.Open([]string{dir}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ran string
			got, err := discoverGPUs(context.Background(), reg, tt.lookPath, func(_ context.Context, smi string) ([]byte, error) {
				ran = smi
				if tt.smiOut == "" {
					return nil, errors.New("nvidia-smi must not run")
				}
				return []byte(tt.smiOut), nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("discover = %+v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || ran != tt.wantSMI {
				t.Errorf("discover = %+v (ran %q), want %+v (ran %q)", got, ran, tt.want, tt.wantSMI)
			}
		})
	}
}
