"""diffusers' CogVideoXPipeline in one memory configuration, one process: the GPU table's reference.

Loads the pipeline folder, applies the configuration, runs text to video (480x720x49, guidance 6
by default) for --steps steps and appends one JSON line to --out (also printed as `RESULT {...}`):
seconds of load, text encode, each denoising step (median after the first) and VAE decode; per
phase torch's peak allocated and reserved device memory (reset at each phase start), the NVML
device figure (gpu_sampler.py, used minus the idle device before this process), and the host's
peak resident memory.

  PYTHONPATH=<diffusers>/src python3 bench/gpu/diffusers_bench.py --model /tmp/gpu-table/pipes/2b \
    --config all_gpu --steps 3 --dtype fp16 --out /tmp/gpu-table/gpu_table.jsonl

Configurations:
  context               no pipeline: a CUDA context only (the NVML baseline the table subtracts)
  all_gpu               pipe.to("cuda")
  model_offload         pipe.enable_model_cpu_offload()
  model_offload_tiling  the same + vae.enable_tiling() + vae.enable_slicing()
  sequential_tiling     pipe.enable_sequential_cpu_offload() + tiling + slicing
  group_offload_tiling  diffusers.hooks.apply_group_offloading(use_stream=True) on the transformer,
                        the text encoder and the VAE (--group-type leaf_level, as diffusers' memory
                        guide shows for CogVideoX, or block_level with one block per group)
                        + tiling + slicing

Phases: encode is pipe.encode_prompt (wrapped); denoise runs from its return to the last step's
callback_on_step_end (each step timed there after torch.cuda.synchronize()); decode is
pipe.decode_latents on the latents (output_type="latent"), timed here.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ["context", "all_gpu", "model_offload", "model_offload_tiling", "sequential_tiling",
           "group_offload_tiling"]
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
PROMPT = "a panda playing a guitar by a lake at sunrise, cinematic, detailed"


def log(message):
    print(f"[diffusers_bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Sampler:
    """gpu_sampler.py in a child process; phases read its samples afterwards."""

    def __init__(self, path, interval_ms):
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "gpu_sampler.py"), "--out", path,
             "--interval-ms", str(interval_ms)])
        time.sleep(0.4)
        self.started_ms = time.time() * 1000

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def samples(self):
        """(source or None, [(epoch ms, used bytes)])."""
        source, rows = None, []
        try:
            with open(self.path) as file:
                for line in file:
                    if line.startswith("# source "):
                        source = line.split()[2]
                    elif line and not line.startswith("#"):
                        ms, used = line.strip().split(",")
                        rows.append((float(ms), int(used)))
        except (OSError, ValueError):
            pass
        return source, rows


def peak_in(rows, start_ms, end_ms):
    values = [used for ms, used in rows if start_ms <= ms <= end_ms]
    return max(values) if values else None


def host_memory():
    """The process's resident memory now (VmRSS, RssAnon, RssFile) and its peak (VmHWM), bytes."""
    result = {}
    try:
        with open("/proc/self/status") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    result[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    result["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def pinned_memory(torch):
    """The CUDA caching host (pinned) allocator's statistics where torch has them."""
    stats = getattr(torch.cuda, "host_memory_stats", None)
    if stats is None:
        return None
    try:
        return {key: value for key, value in stats().items()
                if isinstance(value, (int, float)) and "bytes" in key}
    except Exception:  # noqa: BLE001 - optional figure
        return None


class Phases:
    """Times and memory of the named phases, each starting with a reset of torch's peaks."""

    def __init__(self, torch):
        self.torch = torch
        self.open = {}
        self.done = {}

    def start(self, name):
        self.torch.cuda.synchronize()
        self.torch.cuda.reset_peak_memory_stats()
        self.open[name] = (time.perf_counter(), time.time() * 1000)

    def end(self, name):
        torch = self.torch
        torch.cuda.synchronize()
        started, started_ms = self.open.pop(name)
        self.done[name] = {
            "seconds": time.perf_counter() - started,
            "start_ms": started_ms,
            "end_ms": time.time() * 1000,
            "allocated_bytes": torch.cuda.max_memory_allocated(),
            "reserved_bytes": torch.cuda.max_memory_reserved(),
            "host": host_memory(),
        }


def model_layers(folder):
    """num_layers of the transformer and the text encoder configs, and the transformer's heads."""
    def read(name):
        try:
            with open(os.path.join(folder, name, "config.json")) as file:
                return json.load(file)
        except OSError:
            return {}
    transformer, text_encoder = read("transformer"), read("text_encoder")
    return {
        "layers": transformer.get("num_layers"),
        "heads": transformer.get("num_attention_heads"),
        "t5_layers": text_encoder.get("num_layers"),
    }


def weights_bytes(folder):
    total = 0
    for root, _, names in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names if n.endswith(".safetensors"))
    return total


class StubTokenizer:
    """Fixed token ids for the prompt, used only when T5Tokenizer cannot load here (no
    sentencepiece): the text encoder's work does not depend on which ids it gets."""

    def __call__(self, prompt, padding=None, max_length=226, truncation=False, add_special_tokens=True,
                 return_tensors="pt"):
        import torch

        prompts = [prompt] if isinstance(prompt, str) else prompt
        rows = []
        for text in prompts:
            ids = [3 + (sum(map(ord, word)) % 990) for word in text.split()][: max_length - 1] + [1]
            if padding == "max_length":
                ids += [0] * (max_length - len(ids))
            rows.append(ids)
        width = max(len(row) for row in rows)
        rows = [row + [0] * (width - len(row)) for row in rows]
        return types.SimpleNamespace(input_ids=torch.tensor(rows, dtype=torch.int64))

    def batch_decode(self, ids):
        return ["" for _ in ids]


def load_pipeline(args, torch):
    from diffusers import CogVideoXPipeline

    dtype = getattr(torch, DTYPES[args.dtype])
    try:
        return CogVideoXPipeline.from_pretrained(args.model, torch_dtype=dtype), "T5Tokenizer"
    except Exception as error:  # noqa: BLE001 - retry without the tokenizer, once
        if "tokeniz" not in repr(error).lower() and "sentencepiece" not in repr(error).lower():
            raise
        log(f"tokenizer did not load ({error}); using fixed token ids")
        # Passed as a component it would fail diffusers' class check: set it after loading.
        pipe = CogVideoXPipeline.from_pretrained(args.model, torch_dtype=dtype, tokenizer=None)
        pipe.tokenizer = StubTokenizer()
        return pipe, "stub"


def apply_config(pipe, config, args):
    """Places the pipeline as the configuration says; returns what was applied."""
    import torch

    applied = []
    if config == "all_gpu":
        pipe.to("cuda")
        applied.append('pipe.to("cuda")')
    elif config in ("model_offload", "model_offload_tiling"):
        pipe.enable_model_cpu_offload()
        applied.append("pipe.enable_model_cpu_offload()")
    elif config == "sequential_tiling":
        pipe.enable_sequential_cpu_offload()
        applied.append("pipe.enable_sequential_cpu_offload()")
    elif config == "group_offload_tiling":
        from diffusers.hooks import apply_group_offloading

        options = {"onload_device": torch.device("cuda"), "offload_device": torch.device("cpu"),
                   "offload_type": args.group_type, "use_stream": True}
        if args.group_type == "block_level":
            options["num_blocks_per_group"] = 1
        for name in ("transformer", "text_encoder", "vae"):
            apply_group_offloading(getattr(pipe, name), **options)
            applied.append(f"apply_group_offloading(pipe.{name}, {args.group_type}, use_stream=True)")
    if config.endswith("_tiling"):
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
        applied.append("vae.enable_tiling() + vae.enable_slicing()")
    return applied


def run_context(result, torch):
    """A CUDA context and nothing else, held a second so the sampler sees it."""
    started = time.time() * 1000
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    time.sleep(1.0)
    result["phases"] = {"context": {"start_ms": started, "end_ms": time.time() * 1000,
                                    "allocated_bytes": torch.cuda.max_memory_allocated(),
                                    "reserved_bytes": torch.cuda.max_memory_reserved()}}


def run_pipeline(args, result, torch):
    started = time.perf_counter()
    pipe, tokenizer = load_pipeline(args, torch)
    result["tokenizer"] = tokenizer
    result["load_s"] = time.perf_counter() - started
    log(f"loaded in {result['load_s']:.1f} s")
    phases = Phases(torch)
    phases.start("place")
    result["applied"] = apply_config(pipe, args.config, args)
    phases.end("place")
    log(f"placed in {phases.done['place']['seconds']:.1f} s: {result['applied']}")

    encode_prompt = pipe.encode_prompt

    def timed_encode(*positional, **named):
        phases.start("encode")
        output = encode_prompt(*positional, **named)
        phases.end("encode")
        phases.start("denoise")
        step_marks.append(time.perf_counter())
        return output

    step_marks = []

    def on_step_end(_pipe, index, _timestep, callback_kwargs):
        torch.cuda.synchronize()
        step_marks.append(time.perf_counter())
        if index == args.steps - 1:
            phases.end("denoise")
        log(f"step {index + 1}/{args.steps}: {step_marks[-1] - step_marks[-2]:.2f} s")
        return callback_kwargs

    pipe.encode_prompt = timed_encode
    generator = torch.Generator("cpu").manual_seed(args.seed)
    with torch.no_grad():
        latents = pipe(
            prompt=args.prompt, negative_prompt="", height=args.height, width=args.width,
            num_frames=args.frames, num_inference_steps=args.steps, guidance_scale=args.guidance,
            generator=generator, output_type="latent", return_dict=False,
            callback_on_step_end=on_step_end, max_sequence_length=args.max_sequence_length,
        )[0]
        phases.start("decode")
        frames = pipe.decode_latents(latents)
        phases.end("decode")
    result["frames_shape"] = list(frames.shape)
    steps = [b - a for a, b in zip(step_marks, step_marks[1:])]
    result["step_times_s"] = steps
    result["first_step_s"] = steps[0] if steps else None
    result["step_s"] = statistics.median(steps[1:]) if len(steps) > 1 else (steps[0] if steps else None)
    result["phases"] = phases.done
    for name in ("encode", "denoise", "decode"):
        if name in phases.done:
            result[f"{name}_s"] = phases.done[name]["seconds"]
    result["pinned"] = pinned_memory(torch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="pipeline folder (make_pipeline.py)")
    parser.add_argument("--label", help="model label in the table (default: the folder's name)")
    parser.add_argument("--config", required=True, choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    parser.add_argument("--out", required=True, help="JSON lines file to append to")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--max-sequence-length", type=int, default=226)
    parser.add_argument("--group-type", default="leaf_level", choices=["leaf_level", "block_level"])
    parser.add_argument("--interval-ms", type=float, default=20)
    args = parser.parse_args()
    if args.config != "context" and not args.model:
        parser.error("--model is needed for every configuration but context")

    result = {
        "side": "diffusers", "config": args.config, "status": "failed",
        "model": args.label or (os.path.basename(os.path.normpath(args.model)) if args.model else None),
        "model_dir": args.model, "steps": args.steps, "height": args.height, "width": args.width,
        "frames": args.frames, "guidance": args.guidance, "dtype": DTYPES[args.dtype],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.model:
        result.update(model_layers(args.model))
        result["weights_bytes"] = weights_bytes(args.model)
    if args.config == "group_offload_tiling":
        result["group_type"] = args.group_type
    sampler = Sampler(f"{args.out}.nvml-{os.getpid()}.csv", args.interval_ms)
    wall = time.perf_counter()
    try:
        import torch

        result["versions"] = {"torch": torch.__version__, "python": sys.version.split()[0]}
        try:
            import diffusers
            import transformers

            result["versions"].update({"diffusers": diffusers.__version__,
                                       "transformers": transformers.__version__})
        except ImportError:
            pass
        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        if args.config == "context":
            run_context(result, torch)
        else:
            run_pipeline(args, result, torch)
        result["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - one failing configuration is a result too
        is_oom = type(error).__name__ == "OutOfMemoryError"
        result["status"] = "oom" if is_oom else "failed"
        result["error"] = f"{type(error).__name__}: {error}"[:2000]
        traceback.print_exc()
    finally:
        result["total_s"] = time.perf_counter() - wall
        result["host_peak_bytes"] = host_memory()["ru_maxrss"]
        time.sleep(0.2)
        sampler.stop()
        source, rows = sampler.samples()
        result["nvml_source"] = source
        idle = [used for ms, used in rows if ms < sampler.started_ms]
        if source and rows:
            idle_bytes = min(idle) if idle else rows[0][1]
            result["nvml_idle_bytes"] = idle_bytes
            result["nvml_run_peak_bytes"] = max(used for _, used in rows) - idle_bytes
            for name, phase in result.get("phases", {}).items():
                peak = peak_in(rows, phase["start_ms"], phase["end_ms"])
                phase["nvml_bytes"] = None if peak is None else peak - idle_bytes
        try:
            os.remove(sampler.path)
        except OSError:
            pass
        line = json.dumps(result, sort_keys=True)
        with open(args.out, "a") as out:
            out.write(line + "\n")
        print("RESULT " + line, flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
