"""Real-width CogVideoX components with random weights, and torch reference runs on them.

Writes, under --out, Hugging Face folders of the real CogVideoX-2b / -5b widths with 2 layers
where the real models have many (T5-v1.1-XXL text encoder, 2b and 5b transformers) and the full
VAE, each with seeded random weights rounded to the real storage dtype, then runs diffusers /
transformers on them in float32 (weights loaded back from the folders, so the rounding is the
same for every implementation) and stores inputs and outputs as safetensors:

  text_encoder/            T5EncoderModel, d_model 4096, 2 layers, bfloat16, two shards + index
  transformer_2b/          CogVideoXTransformer3DModel, 30 heads x 64, sin-cos, 2 layers, float16
  transformer_5b/          48 heads x 64, rotary, 2 layers, bfloat16, two shards + index
  vae/                     AutoencoderKLCogVideoX, the real config, float32
  cases/<component>.safetensors   inputs and torch outputs

Run with diffusers' source on PYTHONPATH (no install needed):

  PYTHONPATH=<diffusers>/src python3 bench/real_width/make_components.py --out /tmp/real-width

--small makes narrow, small-sized versions of the same layout (a quick check of the script and of
check_components.ts on a machine without a GPU). Random weights only: no download.
"""

import argparse
import json
import os
import time

import torch
from safetensors.torch import save_file

# Reference runs in true float32: no TF32 matrix products or convolutions.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

# The real repositories' config keys (see tests/fixtures/tiny-cogvideox-hf/README.md) with the
# real values, except num_layers.
TRANSFORMER_2B = {
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 64,
    "dropout": 0.0,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 16,
    "max_text_seq_length": 226,
    "norm_elementwise_affine": True,
    "norm_eps": 1e-05,
    "num_attention_heads": 30,
    "num_layers": 2,
    "out_channels": 16,
    "patch_size": 2,
    "sample_frames": 49,
    "sample_height": 60,
    "sample_width": 90,
    "spatial_interpolation_scale": 1.875,
    "temporal_compression_ratio": 4,
    "temporal_interpolation_scale": 1.0,
    "text_embed_dim": 4096,
    "time_embed_dim": 512,
    "timestep_activation_fn": "silu",
    "use_rotary_positional_embeddings": False,
}
TRANSFORMER_5B = {**TRANSFORMER_2B, "num_attention_heads": 48, "use_rotary_positional_embeddings": True}

VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 256, 512],
    "down_block_types": ["CogVideoXDownBlock3D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "invert_scale_latents": False,
    "latent_channels": 16,
    "latents_mean": None,
    "latents_std": None,
    "layers_per_block": 3,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_height": 480,
    "sample_width": 720,
    "scaling_factor": 1.15258426,
    "shift_factor": None,
    "temporal_compression_ratio": 4,
    "up_block_types": ["CogVideoXUpBlock3D"] * 4,
    "use_post_quant_conv": False,
    "use_quant_conv": False,
}

# google/t5-v1_1-xxl, the CogVideoX text encoder, with 2 of its 24 layers.
T5 = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-06,
    "initializer_factor": 1.0,
    "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": True,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
    "classifier_dropout": 0.0,
}


def small_configs():
    """Narrow versions with the same structure, for a quick run without a GPU."""
    t5 = {**T5, "vocab_size": 1128, "d_model": 64, "d_kv": 16, "d_ff": 96, "num_heads": 4,
          "relative_attention_num_buckets": 32}
    transformer_2b = {**TRANSFORMER_2B, "num_attention_heads": 4, "attention_head_dim": 16,
                      "text_embed_dim": 64, "time_embed_dim": 32, "max_text_seq_length": 16,
                      "sample_height": 8, "sample_width": 12, "sample_frames": 9}
    transformer_5b = {**transformer_2b, "num_attention_heads": 3, "use_rotary_positional_embeddings": True}
    vae = {**VAE, "block_out_channels": [16, 16, 32, 32], "layers_per_block": 1, "norm_num_groups": 4,
           "sample_height": 64, "sample_width": 96}
    size = {"text_tokens": 16, "latent_frames": 3, "height": 64, "width": 96}
    return t5, transformer_2b, transformer_5b, vae, size


def log(message):
    print(f"[make_components {time.strftime('%H:%M:%S')}] {message}", flush=True)


def randomize_norms(model, seed):
    """Every normalisation layer's affine parameters randomised (weight 1 + 0.1 randn, bias
    0.1 randn), as the tiny fixtures do, so a dropped scale or shift shows."""
    generator = torch.Generator().manual_seed(seed)
    count = 0
    for _, module in model.named_modules():
        is_norm = isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) or \
            type(module).__name__ == "T5LayerNorm"
        if not is_norm or getattr(module, "weight", None) is None:
            continue
        with torch.no_grad():
            weight = module.weight
            weight.copy_(1 + 0.1 * torch.randn(weight.shape, generator=generator))
            bias = getattr(module, "bias", None)
            if bias is not None:
                bias.copy_(0.1 * torch.randn(bias.shape, generator=generator))
        count += 1
    return count


def write_config(folder, class_name, config):
    """config.json with the real file's keys only (save_pretrained adds newer defaults)."""
    from diffusers import __version__

    content = {"_class_name": class_name, "_diffusers_version": __version__, **config}
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(content, file, indent=2, sort_keys=True)
        file.write("\n")


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def make_text_encoder(out, config, device, tokens):
    from transformers import T5Config, T5EncoderModel

    folder = os.path.join(out, "text_encoder")
    torch.manual_seed(0)
    with torch.device(device):
        model = T5EncoderModel(T5Config(**config))
    norms = randomize_norms(model, 1000)
    model.to(torch.bfloat16).save_pretrained(folder, max_shard_size="600MB")
    log(f"text_encoder: {sum(p.numel() for p in model.parameters())} parameters, {norms} norms, "
        f"{folder_bytes(folder)} bytes: {sorted(os.listdir(folder))}")
    del model
    model = T5EncoderModel.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    generator = torch.Generator().manual_seed(10)
    input_ids = torch.randint(2, config["vocab_size"], (1, tokens), generator=generator)
    input_ids[0, -1] = 1  # </s>, as the tokenizer ends every prompt
    with torch.no_grad():
        started = time.perf_counter()
        hidden = model(input_ids=input_ids.to(device)).last_hidden_state.float().cpu()
        torch.cuda.synchronize() if device == "cuda" else None
        seconds = time.perf_counter() - started
    log(f"text_encoder: last_hidden_state {list(hidden.shape)} in {seconds:.2f} s, "
        f"max |x| {hidden.abs().max().item():.4g}")
    return {"input_ids": input_ids.contiguous(), "last_hidden_state": hidden.contiguous()}


def make_transformer(out, name, config, dtype, seed, device, size):
    from diffusers import CogVideoXTransformer3DModel

    folder = os.path.join(out, name)
    torch.manual_seed(seed)
    with torch.device(device):
        model = CogVideoXTransformer3DModel.from_config(config)
    norms = randomize_norms(model, seed + 1000)
    shard = "200MB" if config["use_rotary_positional_embeddings"] else "10GB"
    model.to(dtype).save_pretrained(folder, max_shard_size=shard)
    write_config(folder, "CogVideoXTransformer3DModel", config)
    log(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {norms} norms, "
        f"{folder_bytes(folder)} bytes: {sorted(os.listdir(folder))}")
    del model
    model = CogVideoXTransformer3DModel.from_pretrained(folder, torch_dtype=torch.float32)
    model = model.to(device).eval()

    frames = size["latent_frames"]
    height = size["height"] // 8
    width = size["width"] // 8
    generator = torch.Generator().manual_seed(seed + 10)
    hidden_states = torch.randn((2, frames, config["in_channels"], height, width), generator=generator)
    text = torch.randn((2, size["text_tokens"], config["text_embed_dim"]), generator=generator)
    timestep = torch.tensor([500, 500], dtype=torch.int64)
    tensors = {"hidden_states": hidden_states, "encoder_hidden_states": text, "timestep": timestep}
    rotary = None
    if config["use_rotary_positional_embeddings"]:
        cos, sin = rotary_tables(config, size)
        tensors["image_rotary_emb_cos"] = cos
        tensors["image_rotary_emb_sin"] = sin
        rotary = (cos.to(device), sin.to(device))
    with torch.no_grad():
        started = time.perf_counter()
        sample = model(
            hidden_states=hidden_states.to(device),
            encoder_hidden_states=text.to(device),
            timestep=timestep.to(device),
            image_rotary_emb=rotary,
            return_dict=False,
        )[0].float().cpu()
        torch.cuda.synchronize() if device == "cuda" else None
        seconds = time.perf_counter() - started
    log(f"{name}: sample {list(sample.shape)} in {seconds:.2f} s, max |x| {sample.abs().max().item():.4g}")
    tensors["sample"] = sample
    return {key: value.contiguous() for key, value in tensors.items()}


def rotary_tables(config, size):
    """CogVideoXPipeline._prepare_rotary_positional_embeddings for CogVideoX 1.0."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    p = config["patch_size"]
    grid_height = size["height"] // (8 * p)
    grid_width = size["width"] // (8 * p)
    base_size_width = config["sample_width"] // p
    base_size_height = config["sample_height"] // p
    crops = get_resize_crop_region_for_grid((grid_height, grid_width), base_size_width, base_size_height)
    cos, sin = get_3d_rotary_pos_embed(
        embed_dim=config["attention_head_dim"],
        crops_coords=crops,
        grid_size=(grid_height, grid_width),
        temporal_size=size["latent_frames"],
        device="cpu",
    )
    return cos.float(), sin.float()


def make_vae(out, config, device, size):
    from diffusers import AutoencoderKLCogVideoX

    folder = os.path.join(out, "vae")
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoencoderKLCogVideoX.from_config(config)
    norms = randomize_norms(model, 1001)
    model.save_pretrained(folder)
    write_config(folder, "AutoencoderKLCogVideoX", config)
    log(f"vae: {sum(p.numel() for p in model.parameters())} parameters, {norms} norms, "
        f"{folder_bytes(folder)} bytes: {sorted(os.listdir(folder))}")
    del model
    model = AutoencoderKLCogVideoX.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    generator = torch.Generator().manual_seed(20)
    shape = (1, config["latent_channels"], size["latent_frames"], size["height"] // 8, size["width"] // 8)
    z = torch.randn(shape, generator=generator)
    with torch.no_grad():
        started = time.perf_counter()
        sample = model.decode(z.to(device)).sample.float().cpu()
        torch.cuda.synchronize() if device == "cuda" else None
        seconds = time.perf_counter() - started
    log(f"vae: decode {list(z.shape)} -> {list(sample.shape)} in {seconds:.2f} s, "
        f"max |x| {sample.abs().max().item():.4g}")
    return {"latent_sample": z.contiguous(), "sample": sample.contiguous()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the components and cases to")
    parser.add_argument("--small", action="store_true", help="narrow components, small sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", action="append", default=[],
                        help="text_encoder, transformer_2b, transformer_5b or vae (default all)")
    args = parser.parse_args()

    if args.small:
        t5, transformer_2b, transformer_5b, vae, size = small_configs()
    else:
        t5, transformer_2b, transformer_5b, vae = T5, TRANSFORMER_2B, TRANSFORMER_5B, VAE
        size = {"text_tokens": 226, "latent_frames": 13, "height": 480, "width": 720}
    cases = os.path.join(args.out, "cases")
    os.makedirs(cases, exist_ok=True)
    log(f"torch {torch.__version__}, device {args.device}, size {size}")
    wanted = lambda name: not args.only or name in args.only
    jobs = [
        ("text_encoder", lambda: make_text_encoder(args.out, t5, args.device, size["text_tokens"])),
        ("transformer_2b", lambda: make_transformer(
            args.out, "transformer_2b", transformer_2b, torch.float16, 1, args.device, size)),
        ("transformer_5b", lambda: make_transformer(
            args.out, "transformer_5b", transformer_5b, torch.bfloat16, 2, args.device, size)),
        ("vae", lambda: make_vae(args.out, vae, args.device, size)),
    ]
    for name, job in jobs:
        if not wanted(name):
            continue
        tensors = job()
        save_file(tensors, os.path.join(cases, f"{name}.safetensors"), metadata={"format": "pt"})
        if args.device == "cuda":
            torch.cuda.empty_cache()
    log("done")


if __name__ == "__main__":
    main()
