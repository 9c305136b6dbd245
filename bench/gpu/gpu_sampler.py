"""Samples the GPU's used memory every few milliseconds, for the GPU table's drivers.

Writes one line per sample to --out, `<epoch ms>,<used bytes>`, flushed at once, until it gets
SIGTERM or SIGINT (or --seconds pass). The first line says where the figures come from:
`# source nvml` (libnvidia-ml.so.1 through ctypes: nvmlDeviceGetMemoryInfo, the device's used
memory, what `nvidia-smi --query-gpu=memory.used` shows), `# source nvidia-smi` (one nvidia-smi
call per sample, slower), or `# unavailable: <why>` (then no samples; the drivers report null).

  python3 bench/gpu/gpu_sampler.py --out /tmp/samples.csv [--device 0] [--interval-ms 20]

Device-level figures: with one process on the GPU, used minus the idle figure (the samples
before the process starts) is that process's memory, CUDA context included.
No third-party module: the standard library only.
"""

import argparse
import ctypes
import signal
import subprocess
import sys
import time


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def nvml_reader(index):
    """A function returning the device's used bytes through NVML, or raises OSError."""
    lib = ctypes.CDLL("libnvidia-ml.so.1")
    if lib.nvmlInit_v2() != 0:
        raise OSError("nvmlInit_v2 failed")
    handle = ctypes.c_void_p()
    if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) != 0:
        raise OSError(f"no NVML device {index}")
    memory = _Memory()

    def read():
        if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
            raise OSError("nvmlDeviceGetMemoryInfo failed")
        return memory.used

    read()
    return read


def smi_reader(index):
    """The same through one nvidia-smi call per sample (MiB resolution)."""

    def read():
        text = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
        return int(float(text.strip().splitlines()[0]) * 1024 * 1024)

    read()
    return read


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", type=int, default=0, help="NVML index (not CUDA_VISIBLE_DEVICES')")
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=3600, help="stop after this long at the latest")
    args = parser.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(args.out, "w", buffering=1) as out:
        read, source, why = None, None, []
        for name, make in (("nvml", nvml_reader), ("nvidia-smi", smi_reader)):
            try:
                read, source = make(args.device), name
                break
            except Exception as error:  # noqa: BLE001 - any failure means: try the next source
                why.append(f"{name}: {error}")
        if read is None:
            out.write(f"# unavailable: {'; '.join(why)}\n")
            return 0
        out.write(f"# source {source}\n")
        deadline = time.time() + args.seconds
        while not stop and time.time() < deadline:
            try:
                used = read()
            except Exception as error:  # noqa: BLE001
                out.write(f"# error: {error}\n")
                time.sleep(0.5)
                continue
            out.write(f"{int(time.time() * 1000)},{used}\n")
            time.sleep(args.interval_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
