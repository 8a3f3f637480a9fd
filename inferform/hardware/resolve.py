"""Merge what a setup says about hardware with detection and the GPU and CPU catalogs.

Precedence, per value: explicit setup value > catalog row for the named GPU > detection. A GPU named in a
setup that the catalog lacks must bring its own numbers. A CPU's memory bandwidth, which detection cannot
measure, comes from the CPU catalog when the setup or the kernel names a CPU it lists (else the planner's default).
"""

from collections.abc import Callable

from inferform.catalog.gpus import find_gpu, lookup_gpu
from inferform.catalog.instances import InstanceType, load_instance_types
from inferform.catalog.names import canonical_cpu
from inferform.errors import InferformError
from inferform.hardware.profile import CpuInfo, GpuInfo, HardwareProfile
from inferform.setup.spec import GpuSpec, Hardware, Setup
from inferform.setup.yamlpos import Located
from inferform.units import GIB


def gpus_from_spec(specs: list[GpuSpec], located: Located | None) -> list[GpuInfo]:
    gpus: list[GpuInfo] = []
    for i, spec in enumerate(specs):
        entry = lookup_gpu(spec.name)
        if entry is None and spec.vram_gib is None:
            line = located.where(("target", "hardware", "gpus", i, "name"))[0] if located else None
            find_gpu(spec.name, file=located.file if located else None, line=line)  # raises with did-you-mean
        vram_gib = spec.vram_gib or (entry.vram_gib if entry else 0)
        for _ in range(spec.count):
            gpus.append(GpuInfo(
                index=len(gpus), name=entry.name if entry else spec.name,
                vendor=entry.vendor if entry else "nvidia", backend=entry.backend if entry else "cuda",
                vram_bytes=int(vram_gib * GIB),
                bandwidth_gbs=spec.bandwidth_gbs or (entry.bandwidth_gbs if entry else None),
                fp16_tflops=spec.fp16_tflops or (entry.fp16_tflops if entry else None),
                compute_capability=entry.compute_capability if entry else None,
                unified_memory=entry.unified_memory if entry else False,
                working_set_bytes=int(spec.working_set_gib * GIB) if spec.working_set_gib else None,
                origin="setup" if spec.vram_gib else "catalog"))
    return gpus


def _merge_local(hw: Hardware | None, detected: HardwareProfile, located: Located | None) -> HardwareProfile:
    if hw is None:
        return detected
    profile = detected.model_copy(deep=True)
    given = hw.model_fields_set
    if "gpus" in given:
        profile.gpus = gpus_from_spec(hw.gpus, located)
        profile.notes = [n for n in profile.notes if "GPU" not in n]
        profile.notes.append("GPUs as described in the setup" if hw.gpus else "CPU only, as the setup says")
    if hw.ram_gib is not None:
        profile.ram_bytes = int(hw.ram_gib * GIB)
        profile.ram_available_bytes = None
        profile.notes.append(f"RAM {hw.ram_gib:g} GiB from the setup")
    if hw.cpu is not None:
        update = {k: v for k, v in hw.cpu.model_dump(exclude_none=True).items()}
        if "cores" in update and "threads" not in update:
            update["threads"] = update["cores"]
        cpu = profile.cpu.model_copy(update={**update, "origin": "setup"})
        profile.cpu = CpuInfo.model_validate(cpu.model_dump())
    return profile


def _from_instance_type(setup: Setup, located: Located | None) -> HardwareProfile | None:
    target = setup.target
    if target.instance_type == "auto":
        return None  # the planner chooses the instance
    types = load_instance_types()
    row = types.get(target.instance_type)
    if row is None:
        from inferform.errors import did_you_mean

        line = located.where(("target", "instance_type"))[0] if located else None
        raise InferformError.single(f"unknown instance type {target.instance_type!r}",
                                    file=located.file if located else None, line=line,
                                    hint=did_you_mean(target.instance_type, types) or "use instance_type: auto")
    return instance_profile(row)


def instance_profile(row: InstanceType) -> HardwareProfile:
    """The machine an instance-type row describes (shared by named types and the cloud instance planner).
    llama.cpp runs one thread per physical core: vCPUs / threads_per_core (2 on SMT x86, 1 on Graviton and t2)."""
    specs = [GpuSpec(name=row.gpu, count=row.gpu_count, vram_gib=row.gpu_memory_gib)] if row.gpu else []
    gpus = gpus_from_spec(specs, None)
    for g in gpus:
        g.origin = "catalog"
    cpu = CpuInfo(name=f"{row.type} vCPUs", cores=row.physical_cores, threads=row.vcpus, origin="catalog")
    return HardwareProfile(os="linux", arch="aarch64" if row.family.endswith("g") else "x86_64", cpu=cpu,
                           ram_bytes=int(row.ram_gib * GIB), gpus=gpus,
                           notes=[f"{row.type} from the instance catalog ({row.source})"])


def _from_setup_only(hw: Hardware, located: Located | None) -> HardwareProfile:
    """An ssh target: the setup's description is all there is (detection would describe this machine instead)."""
    assert hw.cpu is not None and hw.cpu.cores is not None and hw.ram_gib is not None  # spec checks kind: ssh
    cpu = CpuInfo.model_validate({**hw.cpu.model_dump(exclude_none=True), "threads": hw.cpu.threads or hw.cpu.cores,
                                  "origin": "setup"})
    return HardwareProfile(os="linux", arch="x86_64", cpu=cpu, ram_bytes=int(hw.ram_gib * GIB),
                           gpus=gpus_from_spec(hw.gpus, located),
                           notes=["ssh target: hardware as described in the setup (not detected)"])


def resolve_hardware(setup: Setup, located: Located | None,
                     detector: Callable[[], HardwareProfile]) -> HardwareProfile | None:
    """The machine this setup runs on; None for a cloud setup whose instance type the planner picks."""
    if setup.target.is_cloud:
        return _from_instance_type(setup, located)
    if setup.target.kind == "ssh" and setup.target.hardware is not None:
        return _with_cpu_catalog(_from_setup_only(setup.target.hardware, located))
    return _with_cpu_catalog(_merge_local(setup.target.hardware, detector(), located))


def _with_cpu_catalog(profile: HardwareProfile) -> HardwareProfile:
    """Fill an unknown memory bandwidth from the CPU catalog's peak figure for the named CPU."""
    if profile.cpu.memory_bandwidth_gbs is not None or canonical_cpu(profile.cpu.name) is None:
        return profile
    from inferform.catalog.cpus import lookup_cpu  # a listed CPU: only then its row model

    entry = lookup_cpu(profile.cpu.name)
    if entry is None or entry.max_memory_bandwidth_gbs is None:
        return profile
    cpu = profile.cpu.model_copy(update={"memory_bandwidth_gbs": entry.max_memory_bandwidth_gbs})
    note = (f"CPU memory bandwidth {entry.max_memory_bandwidth_gbs:g} GB/s: the peak of {entry.name} "
            f"({entry.memory_channels or '?'} x {entry.memory_type or '?'}) from the CPU catalog ({entry.source})")
    return profile.model_copy(update={"cpu": cpu, "notes": [*profile.notes, note]})
