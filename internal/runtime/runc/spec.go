package runc

import (
	"cmp"
	"fmt"
	"maps"
	goruntime "runtime"
	"slices"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sandboxd/sandboxd/internal/runtime"
)

// agentPath is where the agent binary appears inside every sandbox.
const agentPath = "/.sandbox/agent"

// defaultCaps is Docker's default capability set, and nothing more.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Docker's masked and read-only /proc and /sys paths.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// deniedSyscalls are removed from Docker's default seccomp profile, which
// allows them on recent kernels; the profile already denies mount, kexec_load,
// init_module, bpf, keyctl, perf_event_open and the rest for a container
// without CAP_SYS_ADMIN.
var deniedSyscalls = map[string]bool{
	"ptrace": true, "process_vm_readv": true, "process_vm_writev": true,
	"userfaultfd": true, "io_uring_setup": true, "io_uring_enter": true, "io_uring_register": true,
}

// nofile stays under this host's hard limit (20000, PLATFORM.md): asking
// for more makes container start fail.
const nofile = 16384

// buildSpec returns the OCI config of a sandbox's container. With
// cgroup2, the container's own cgroup2 subtree (its cgroup namespace's
// root, delegated to it: cgroup.go) is mounted read-write at
// /sys/fs/cgroup. With netns, the path of a network namespace the daemon
// made (network_ns.go), the container joins it instead of getting a new
// one, and sees that namespace's sysfs (see sysfsDir) at /sys.
func (r *Runtime) buildSpec(s runtime.Spec, netns string, cgroup2 bool) (*specs.Spec, error) {
	res := s.Resources.WithDefaults()
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/workspace"
	}
	env := map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": "/root",
		"LANG": "C.UTF-8",
		"TERM": "xterm-256color",
	}
	maps.Copy(env, s.Env)
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	slices.Sort(envList)

	idmap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: s.UIDBase, Size: runtime.IDMapSize}}
	memory := res.MemoryMB << 20
	period := uint64(100000)
	quota := int64(res.CPUs * float64(period))
	oomAdj := 500 // under host memory pressure, sandboxes go before the daemon
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if netns != "" {
		sys = specs.Mount{Destination: "/sys", Type: "bind", Source: sysfsDir(netns), Options: []string{"rbind", "ro", "nosuid", "noexec", "nodev"}}
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: cmp.Or(s.Hostname, s.ID),
		Process: &specs.Process{
			// The agent creates the working directory if it is missing,
			// so a bad cwd fails a command, never the container's start.
			Args: append([]string{agentPath, "--workdir", cwd}, r.agentArgs...),
			Env:  envList,
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			NoNewPrivileges: true,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			OOMScoreAdj:     &oomAdj,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			sys,
			{Destination: agentPath, Type: "bind", Source: r.agent, Options: []string{"bind", "ro", "nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			UIDMappings: idmap,
			GIDMappings: idmap,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: netns}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
				{Type: specs.UserNamespace},
			},
			CgroupsPath: r.cgroup(s.ID),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				Pids:    &specs.LinuxPids{Limit: &res.Pids},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	if cgroup2 {
		// After /sys, which is read-only; the mount's root is the
		// cgroup namespace's, which runc has entered by then.
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup2",
			Options: []string{"nosuid", "noexec", "nodev", "rw"},
		})
	}
	sc, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	spec.Linux.Seccomp = tighten(sc)
	return spec, nil
}

// nativeArch is the seccomp architecture of the host's own system call
// ABI, by GOARCH.
var nativeArch = map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}

// tighten removes deniedSyscalls from every allow rule of a profile whose
// default action is to deny, and every architecture but the host's own:
// the compat ABIs (32-bit x86 and x32 on amd64, 32-bit arm on arm64) are
// refused outright. Nothing in a sandbox's image needs them, they are a
// kernel attack surface of their own, and each architecture in the
// profile costs every start the compiling of its filter (on amd64, three
// architectures took ~25 ms of CPU per start, one takes ~6).
func tighten(sc *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	if arch, ok := nativeArch[goruntime.GOARCH]; ok {
		sc.Architectures = []specs.Arch{arch}
	}
	for i, rule := range sc.Syscalls {
		if rule.Action == specs.ActAllow {
			sc.Syscalls[i].Names = slices.DeleteFunc(rule.Names, func(n string) bool { return deniedSyscalls[n] })
		}
	}
	sc.Syscalls = slices.DeleteFunc(sc.Syscalls, func(rule specs.LinuxSyscall) bool {
		return rule.Action == specs.ActAllow && len(rule.Names) == 0
	})
	return sc
}
