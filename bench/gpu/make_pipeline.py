"""Complete real-width CogVideoX-2b / -5b pipeline folders with random weights, for the GPU table.

Writes <out>/2b and <out>/5b in the Hugging Face layout of THUDM/CogVideoX-2b / -5b, loadable by
diffusers' CogVideoXPipeline.from_pretrained and by cogflow's load_pipeline:

  model_index.json, scheduler/, tokenizer/   copied from tests/fixtures/tiny-cogvideox-hf/<variant>
                                             (the tiny tokenizer's ids fit the real vocabulary)
  text_encoder/   T5-v1.1-XXL encoder (d_model 4096, 64 heads, d_ff 10240, vocab 32128), 24 layers
                  unless --t5-layers; float16 (2b) / bfloat16 (5b); two shards + index, like the
                  real repositories
  transformer/    CogVideoXTransformer3DModel at the real widths, --layers (default the real 30 / 42);
                  float16 (2b, one file) / bfloat16 (5b, two shards + index)
  vae/            AutoencoderKLCogVideoX, the real config, float32

The config dicts and the norm randomisation are bench/real_width/make_components.py's (imported);
every config.json carries the tiny fixture's key set (checked). Models are made on the GPU (fast
init), then saved; sizes and times are printed, and <out>/<variant>.manifest.json is written last
(a later run with the same settings skips the variant unless --force).

  PYTHONPATH=<diffusers>/src python3 bench/gpu/make_pipeline.py --out /tmp/gpu-table/pipes \
    [--variant 2b --variant 5b] [--layers N] [--t5-layers N] [--force]
"""

import argparse
import json
import os
import shutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "real_width"))

import make_components as mc  # noqa: E402 - after the path above

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf")
FULL_LAYERS = {"2b": 30, "5b": 42}
T5_FULL_LAYERS = 24
VARIANTS = {
    "2b": {"transformer": mc.TRANSFORMER_2B, "dtype": torch.float16, "seed": 1,
           "vae": mc.VAE},
    "5b": {"transformer": mc.TRANSFORMER_5B, "dtype": torch.bfloat16, "seed": 2,
           "vae": {**mc.VAE, "scaling_factor": 0.7}},
}


def log(message):
    print(f"[make_pipeline {time.strftime('%H:%M:%S')}] {message}", flush=True)


def read_json(path):
    with open(path) as file:
        return json.load(file)


def write_json(path, content):
    with open(path, "w") as file:
        json.dump(content, file, indent=2, sort_keys=True)
        file.write("\n")


def check_keys(name, written, tiny):
    """The written config's keys must be the tiny fixture's (the real file's key set)."""
    extra, missing = sorted(set(written) - set(tiny)), sorted(set(tiny) - set(written))
    if extra or missing:
        raise SystemExit(f"{name}/config.json: keys differ from the tiny fixture's: extra {extra}, missing {missing}")
    log(f"{name}/config.json: {len(written)} keys, the tiny fixture's key set")


def parameters(model):
    return sum(p.numel() for p in model.parameters())


def make_text_encoder(folder, tiny, layers, dtype):
    from transformers import T5Config, T5EncoderModel

    started = time.perf_counter()
    config = {**mc.T5, "num_layers": layers, "num_decoder_layers": layers}
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = T5EncoderModel(T5Config(**config))
    norms = mc.randomize_norms(model, 1000)
    count = parameters(model)
    made = time.perf_counter() - started
    model.to(dtype).save_pretrained(folder, max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    # The real file's key set: the tiny fixture's keys with this model's values.
    saved = read_json(os.path.join(folder, "config.json"))
    content = {key: saved.get(key, value) for key, value in tiny.items()}
    content.update({key: config[key] for key in config if key in tiny})
    content["torch_dtype"] = str(dtype).removeprefix("torch.")
    write_json(os.path.join(folder, "config.json"), content)
    check_keys("text_encoder", content, tiny)
    return {"parameters": count, "norms": norms, "make_s": made, "save_s": time.perf_counter() - started - made}


def make_transformer(folder, config, dtype, seed):
    from diffusers import CogVideoXTransformer3DModel

    started = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = CogVideoXTransformer3DModel.from_config(config)
    norms = mc.randomize_norms(model, seed + 1000)
    count = parameters(model)
    made = time.perf_counter() - started
    model.to(dtype).save_pretrained(folder, max_shard_size="10GB")
    del model
    torch.cuda.empty_cache()
    mc.write_config(folder, "CogVideoXTransformer3DModel", config)
    return {"parameters": count, "norms": norms, "make_s": made, "save_s": time.perf_counter() - started - made}


def make_vae(folder, config):
    from diffusers import AutoencoderKLCogVideoX

    started = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoencoderKLCogVideoX.from_config(config)
    norms = mc.randomize_norms(model, 1001)
    count = parameters(model)
    made = time.perf_counter() - started
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    mc.write_config(folder, "AutoencoderKLCogVideoX", config)
    return {"parameters": count, "norms": norms, "make_s": made, "save_s": time.perf_counter() - started - made}


def make_variant(out, variant, layers, t5_layers):
    spec = VARIANTS[variant]
    tiny = os.path.join(FIXTURES, variant)
    folder = os.path.join(out, variant)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    shutil.copy(os.path.join(tiny, "model_index.json"), folder)
    for name in ("scheduler", "tokenizer"):
        shutil.copytree(os.path.join(tiny, name), os.path.join(folder, name))
    components = {}
    transformer = {**spec["transformer"], "num_layers": layers}
    jobs = [
        ("text_encoder", lambda path: make_text_encoder(
            path, read_json(os.path.join(tiny, "text_encoder", "config.json")), t5_layers, spec["dtype"])),
        ("transformer", lambda path: make_transformer(path, transformer, spec["dtype"], spec["seed"])),
        ("vae", lambda path: make_vae(path, spec["vae"])),
    ]
    for name, job in jobs:
        path = os.path.join(folder, name)
        info = job(path)
        info["bytes"] = mc.folder_bytes(path)
        info["files"] = sorted(os.listdir(path))
        if name != "text_encoder":
            check_keys(name, read_json(os.path.join(path, "config.json")),
                       read_json(os.path.join(tiny, name, "config.json")))
        components[name] = info
        log(f"{variant} {name}: {info['parameters']:,} parameters, {info['norms']} norms, "
            f"{info['bytes'] / 2**30:.2f} GiB in {info['files']}; made in {info['make_s']:.1f} s, "
            f"saved in {info['save_s']:.1f} s")
    return components


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for <variant>/ and <variant>.manifest.json")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="2b, 5b (default both)")
    parser.add_argument("--layers", type=int, help="transformer layers (default the real 30 / 42)")
    parser.add_argument("--t5-layers", type=int, default=T5_FULL_LAYERS, help="text encoder layers (default 24)")
    parser.add_argument("--force", action="store_true", help="remake variants that are already there")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("make_pipeline.py: no CUDA device (the models are made on the GPU)")
    os.makedirs(args.out, exist_ok=True)
    log(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    for variant in args.variant or ["2b", "5b"]:
        layers = args.layers or FULL_LAYERS[variant]
        settings = {"variant": variant, "layers": layers, "full_layers": FULL_LAYERS[variant],
                    "t5_layers": args.t5_layers, "t5_full_layers": T5_FULL_LAYERS}
        manifest = os.path.join(args.out, f"{variant}.manifest.json")
        if not args.force and os.path.exists(manifest):
            if {k: read_json(manifest).get(k) for k in settings} == settings:
                log(f"{variant}: already made with {settings}, skipped (--force remakes it)")
                continue
        started = time.perf_counter()
        components = make_variant(args.out, variant, layers, args.t5_layers)
        total = sum(info["bytes"] for info in components.values())
        write_json(manifest, {**settings, "folder": os.path.join(args.out, variant), "bytes": total,
                              "seconds": time.perf_counter() - started, "components": components})
        log(f"{variant}: {total / 2**30:.2f} GiB in {time.perf_counter() - started:.1f} s -> {manifest}")
    log("done")


if __name__ == "__main__":
    main()
