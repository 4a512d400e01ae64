/*
 * cpumask: make this process (and its threads and forks) see an older x86 CPU
 * through CPUID, at native speed, on a CPU with CPUID faulting (Linux lists
 * "cpuid_fault" in /proc/cpuinfo; Intel since Ivy Bridge, also under KVM).
 *
 * Loaded with LD_PRELOAD by bench/cpumask/run.py; the profile comes from the
 * environment variable CPUMASK_PROFILE ("icelake-server", "skylake-avx512" or
 * "haswell").
 *
 * How: the constructor installs a SIGSEGV handler and calls
 * arch_prctl(ARCH_SET_CPUID, 0), after which every CPUID instruction in this
 * thread, in threads created later and in forked children traps (#GP ->
 * SIGSEGV, si_code SI_KERNEL). The handler checks the faulting instruction is
 * CPUID (0F A2), runs the real CPUID with faulting briefly off, clears the
 * profile's feature bits, writes EAX..EDX into the interrupted context and
 * steps over the instruction. execve resets faulting; LD_PRELOAD in the
 * environment loads this library again in the new program.
 *
 * Every other SIGSEGV goes to the handler the program installed (Python's
 * faulthandler, a JIT's guard pages): sigaction() and signal() for SIGSEGV are
 * interposed, so the program's handler is recorded and chained to while this
 * one stays installed, and the program reads back what it set. With no
 * program handler the default action runs (the process dies with SIGSEGV, as
 * it would have).
 *
 * What it cannot mask: CPUID executed before this constructor runs (the
 * dynamic loader's own detection, which picks glibc's string functions; the
 * runner trims those with GLIBC_TUNABLES), XGETBV (the OS-enabled state
 * components are unchanged) and programs that drop LD_PRELOAD.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

#define BIT(n) (1u << (n))

/* Bits to clear per leaf, from the Intel SDM vol. 2A, CPUID leaf 07H. */

/* Leaf 7 subleaf 0, EBX. */
#define L7_EBX_AVX512F BIT(16)
#define L7_EBX_AVX512DQ BIT(17)
#define L7_EBX_AVX512_IFMA BIT(21)
#define L7_EBX_AVX512PF BIT(26)
#define L7_EBX_AVX512ER BIT(27)
#define L7_EBX_AVX512CD BIT(28)
#define L7_EBX_SHA BIT(29)
#define L7_EBX_AVX512BW BIT(30)
#define L7_EBX_AVX512VL BIT(31)
/* Leaf 7 subleaf 0, ECX. */
#define L7_ECX_AVX512_VBMI BIT(1)
#define L7_ECX_AVX512_VBMI2 BIT(6)
#define L7_ECX_GFNI BIT(8)
#define L7_ECX_VAES BIT(9)
#define L7_ECX_VPCLMULQDQ BIT(10)
#define L7_ECX_AVX512_VNNI BIT(11)
#define L7_ECX_AVX512_BITALG BIT(12)
#define L7_ECX_AVX512_VPOPCNTDQ BIT(14)
/* Leaf 7 subleaf 0, EDX. */
#define L7_EDX_AVX512_4VNNIW BIT(2)
#define L7_EDX_AVX512_4FMAPS BIT(3)
#define L7_EDX_AVX512_VP2INTERSECT BIT(8)
#define L7_EDX_AMX_BF16 BIT(22)
#define L7_EDX_AVX512_FP16 BIT(23)
#define L7_EDX_AMX_TILE BIT(24)
#define L7_EDX_AMX_INT8 BIT(25)

/* Ice Lake-SP (Xeon Scalable 3rd gen): AVX-512 with VNNI, VBMI, IFMA...; no AMX,
 * BF16, FP16 and nothing from leaf 7 subleaf 1 (AVX-VNNI came with Alder Lake). */
static const uint32_t ICELAKE_L7_EBX = L7_EBX_AVX512PF | L7_EBX_AVX512ER;
static const uint32_t ICELAKE_L7_ECX = 0;
static const uint32_t ICELAKE_L7_EDX = L7_EDX_AVX512_4VNNIW | L7_EDX_AVX512_4FMAPS |
                                       L7_EDX_AVX512_VP2INTERSECT | L7_EDX_AMX_BF16 |
                                       L7_EDX_AVX512_FP16 | L7_EDX_AMX_TILE | L7_EDX_AMX_INT8;
/* Skylake-SP (Xeon Scalable 1st gen): AVX-512 F/DQ/CD/BW/VL, nothing later. */
static const uint32_t SKYLAKE_L7_EBX = L7_EBX_AVX512_IFMA | L7_EBX_AVX512PF | L7_EBX_AVX512ER |
                                       L7_EBX_SHA;
static const uint32_t SKYLAKE_L7_ECX = L7_ECX_AVX512_VBMI | L7_ECX_AVX512_VBMI2 | L7_ECX_GFNI |
                                       L7_ECX_VAES | L7_ECX_VPCLMULQDQ | L7_ECX_AVX512_VNNI |
                                       L7_ECX_AVX512_BITALG | L7_ECX_AVX512_VPOPCNTDQ;
static const uint32_t SKYLAKE_L7_EDX = L7_EDX_AVX512_4VNNIW | L7_EDX_AVX512_4FMAPS |
                                       L7_EDX_AVX512_VP2INTERSECT | L7_EDX_AMX_BF16 |
                                       L7_EDX_AVX512_FP16 | L7_EDX_AMX_TILE | L7_EDX_AMX_INT8;
/* Haswell: also no AVX-512 at all. */
static const uint32_t AVX512_L7_EBX = L7_EBX_AVX512F | L7_EBX_AVX512DQ | L7_EBX_AVX512CD |
                                      L7_EBX_AVX512BW | L7_EBX_AVX512VL;

struct profile {
    const char *name;
    uint32_t l7_ebx, l7_ecx, l7_edx;
};

static const struct profile PROFILES[] = {
    {"icelake-server", ICELAKE_L7_EBX, ICELAKE_L7_ECX, ICELAKE_L7_EDX},
    {"skylake-avx512", SKYLAKE_L7_EBX, SKYLAKE_L7_ECX, SKYLAKE_L7_EDX},
    {"haswell", SKYLAKE_L7_EBX | AVX512_L7_EBX, SKYLAKE_L7_ECX, SKYLAKE_L7_EDX},
};

static const struct profile *active;
static struct sigaction chained; /* the program's SIGSEGV disposition */
static int installed;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static long set_cpuid_faulting(int on) {
    /* ARCH_SET_CPUID with 0 makes CPUID fault; with 1 it runs normally. */
    return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1);
}

static void masked_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
    set_cpuid_faulting(0);
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
    set_cpuid_faulting(1);
    switch (leaf) {
    case 7:
        if (subleaf == 0) {
            out[0] = 0; /* the highest subleaf: only 0, as on Ice Lake and earlier */
            out[1] &= ~active->l7_ebx;
            out[2] &= ~active->l7_ecx;
            out[3] &= ~active->l7_edx;
        } else {
            /* subleaf 1 (AVX-VNNI, AVX512_BF16, AMX-FP16, AVX-VNNI-INT8, AVX10...) and later */
            out[0] = out[1] = out[2] = out[3] = 0;
        }
        break;
    case 0x1d: /* AMX tile palettes */
    case 0x1e: /* AMX TMUL */
    case 0x24: /* AVX10 */
        out[0] = out[1] = out[2] = out[3] = 0;
        break;
    default:
        break;
    }
}

static void chain(int sig, siginfo_t *info, void *context) {
    struct sigaction next = chained;
    if (next.sa_handler == SIG_DFL || next.sa_handler == SIG_IGN) {
        /* The default action: restore it, then let the fault happen again
         * (a hardware fault re-executes on return) or re-send a sent signal. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
        if (info->si_code <= 0) {
            raise(sig);
        }
        return;
    }
    if (next.sa_flags & SA_RESETHAND) {
        memset(&chained, 0, sizeof chained);
        chained.sa_handler = SIG_DFL;
    }
    if (next.sa_flags & SA_SIGINFO) {
        next.sa_sigaction(sig, info, context);
    } else {
        next.sa_handler(sig);
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    /* A faulted CPUID is a #GP: si_code SI_KERNEL, and RIP points at it. */
    if (active != NULL && info->si_code == SI_KERNEL && ip != NULL && ip[0] == 0x0f &&
        ip[1] == 0xa2) {
        int saved_errno = errno;
        uint32_t out[4];
        masked_cpuid((uint32_t)regs[REG_RAX], (uint32_t)regs[REG_RCX], out);
        regs[REG_RAX] = out[0];
        regs[REG_RBX] = out[1];
        regs[REG_RCX] = out[2];
        regs[REG_RDX] = out[3];
        regs[REG_RIP] += 2;
        errno = saved_errno;
        return;
    }
    chain(sig, info, context);
}

static void find_real_sigaction(void) {
    if (real_sigaction == NULL) {
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
            RTLD_NEXT, "sigaction");
    }
}

/* The program's view of SIGSEGV is `chained`; the installed handler stays on_segv. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    find_real_sigaction();
    if (sig != SIGSEGV || !installed) {
        return real_sigaction(sig, act, old);
    }
    if (old != NULL) {
        *old = chained;
    }
    if (act != NULL) {
        chained = *act;
    }
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0) {
        return SIG_ERR;
    }
    return old.sa_handler;
}

__attribute__((constructor)) static void cpumask_init(void) {
    const char *name = getenv("CPUMASK_PROFILE");
    if (name == NULL || *name == '\0') {
        return;
    }
    for (size_t i = 0; i < sizeof PROFILES / sizeof PROFILES[0]; i++) {
        if (strcmp(PROFILES[i].name, name) == 0) {
            active = &PROFILES[i];
        }
    }
    if (active == NULL) {
        fprintf(stderr, "cpumask: unknown profile %s\n", name);
        _exit(97);
    }
    find_real_sigaction();
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_segv;
    act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (real_sigaction(SIGSEGV, &act, &chained) != 0) {
        fprintf(stderr, "cpumask: sigaction failed: %s\n", strerror(errno));
        _exit(97);
    }
    installed = 1;
    if (set_cpuid_faulting(1) != 0) {
        /* A measurement that silently ran unmasked would be wrong: stop. */
        fprintf(stderr, "cpumask: CPUID faulting unavailable (arch_prctl: %s)\n", strerror(errno));
        _exit(97);
    }
}
