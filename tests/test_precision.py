"""precision=auto: bf16 only where the CPU's bf16 units outrun its float32 ones, decided from what
the CPU has (so one machine always picks the same precision), and the explicit settings as given."""
import torch

from shortrun.model import cpu_prefers_bf16, pick_precision


def cpuinfo(vendor: str, *flags: str, processors: int = 2) -> str:
    block = (f"processor\t: {{i}}\nvendor_id\t: {vendor}\nmodel name\t: a CPU\n"
             f"flags\t\t: fpu sse sse2 avx avx2 fma {' '.join(flags)}\n")
    return "\n".join(block.format(i=i) for i in range(processors))


def test_amx_prefers_bf16_on_any_vendor():
    assert cpu_prefers_bf16(cpuinfo("GenuineIntel", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))


def test_amd_with_avx512_bf16_prefers_bf16():
    assert cpu_prefers_bf16(cpuinfo("AuthenticAMD", "avx512f", "avx512_bf16"))


def test_intel_with_avx512_bf16_but_no_amx_keeps_float32():
    """Measured slower in bf16 (0.65x) on such a CPU."""
    assert not cpu_prefers_bf16(cpuinfo("GenuineIntel", "avx512f", "avx512_bf16"))


def test_cpus_without_bf16_keep_float32():
    assert not cpu_prefers_bf16(cpuinfo("AuthenticAMD"))  # AVX2 only
    assert not cpu_prefers_bf16(cpuinfo("AuthenticAMD", "avx512f", "avx512bw"))
    assert not cpu_prefers_bf16(cpuinfo("GenuineIntel", "avx512f"))
    assert not cpu_prefers_bf16("")  # no /proc/cpuinfo text (another OS)


def test_a_flag_name_that_only_contains_amx_bf16_does_not_count():
    assert not cpu_prefers_bf16(cpuinfo("GenuineIntel", "xamx_bf16x"))


def test_explicit_precision_is_taken_as_given():
    cpu = torch.device("cpu")
    assert pick_precision("fp32", cpu) == torch.float32 and pick_precision("bf16", cpu) == torch.bfloat16
    assert pick_precision("auto", cpu) in (torch.float32, torch.bfloat16)
