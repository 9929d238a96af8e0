"""Scaling up: the accelerate config files, sft.py --estimate_memory, real 2-process data-parallel training on CPU."""

import json
import math
import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, load_script, run_script, write_json

sft = load_script("sft")

CONFIGS = {
    "ddp.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP",
    "deepspeed_zero2.yaml": "DEEPSPEED",
    "deepspeed_zero3.yaml": "DEEPSPEED",
    "cpu.yaml": "MULTI_GPU",  # see the file: MULTI_CPU / use_cpu would start a single process
}


@pytest.mark.parametrize("name,distributed_type", CONFIGS.items())
def test_accelerate_config_files_load(name, distributed_type):
    from accelerate.commands.config.config_args import load_config_from_file

    path = ROOT / "examples" / "accelerate" / name
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# make ") and f"--config_file examples/accelerate/{name}" in first_line
    raw = yaml.safe_load(path.read_text())
    assert {"compute_environment", "distributed_type", "num_machines", "num_processes", "mixed_precision"} <= set(raw)
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == distributed_type and config.num_processes == 2
    if name == "cpu.yaml":
        assert config.mixed_precision == "no" and not config.use_cpu
    else:
        assert config.mixed_precision == "bf16"
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert config.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
        assert config.fsdp_config["fsdp_reshard_after_forward"] is True  # FULL_SHARD
    if name.startswith("deepspeed"):
        assert config.deepspeed_config["zero_stage"] == int(name[-6])
        # batch size, accumulation and clipping must come from sft.py ("auto"), or DeepSpeed rejects a mismatch
        assert not {"gradient_accumulation_steps", "gradient_clipping"} & set(config.deepspeed_config)
    if name == "deepspeed_zero3.yaml":
        assert config.deepspeed_config["zero3_save_16bit_model"] is True


# ------------------------------------------------------------------------------------------------ --estimate_memory

LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)


def test_estimate_counts_the_embedded_model_parameters(default_model_dir):
    from safetensors import safe_open
    from transformers import AutoConfig

    with safe_open(Path(default_model_dir) / "model.safetensors", "pt") as weights:
        real = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    assert real == pytest.approx(134.5e6, rel=0.001)
    estimate = sft.estimate_memory(AutoConfig.from_pretrained(default_model_dir), references=False)
    assert estimate["params"] == pytest.approx(real, rel=0.02)


def test_estimate_from_a_config_dict():
    estimate = sft.estimate_memory(LLAMA2_7B, "Llama-2-7B", batch_size=4, max_length=1024, lora_r=16)
    assert estimate["params"] == pytest.approx(6.738e9, rel=0.01)
    assert estimate["lora_params"] == 39_976_960  # PEFT's count for r=16 on every linear layer of Llama-2-7B
    full, lora, qlora = estimate["rows"].values()
    assert full["weights"] + full["grads+optimizer"] == pytest.approx(18 * 6.738e9 / 2**30, rel=0.01)
    assert full["total_ckpt"] > lora["total_ckpt"] > qlora["total_ckpt"]
    assert qlora["weights"] == pytest.approx(3.5, rel=0.1)  # ~0.52 B/param for the layers, bf16 embeddings
    for row in estimate["rows"].values():
        assert row["activations_ckpt"] < row["activations"] / 5  # checkpointing keeps ~1 layer of 32
    doubled = sft.estimate_memory(LLAMA2_7B, batch_size=8, max_length=1024, references=False)
    assert doubled["rows"]["full"]["activations"] == pytest.approx(2 * full["activations"])
    only_qv = sft.estimate_memory(LLAMA2_7B, lora_target_modules=["q_proj", "v_proj"], references=False)
    assert only_qv["lora_params"] == 32 * 2 * 16 * (4096 + 4096)
    for reference in ("Llama-3.2-1B", "Phi-3-mini", "Llama-2-7B", "Mistral-7B"):
        assert reference in estimate["table"]


def test_estimate_needs_a_decoder_config():
    with pytest.raises(SystemExit, match="only decoder-only Llama-style models"):
        sft.estimate_memory({"d_model": 512}, "t5-small")


def test_estimate_memory_flag_prints_the_table_without_data_or_weights(tiny_model_dir):
    result = run_script("sft.py", "--estimate_memory", "--model_name_or_path", tiny_model_dir,
                        "--per_device_train_batch_size", "4", "--max_length", "256", "--dtype", "bfloat16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch 4 x 256 tokens" in result.stdout and "LoRA r=16" in result.stdout
    assert "Mistral-7B" in result.stdout and "frozen weights 2 B/param" in result.stdout


# ----------------------------------------------------------------------------------- 2-process data parallel (CPU)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes, model, data, output_dir, *extra):
    """sft.py on `processes` CPU processes (gloo), with the same global batch of 4 whatever the process count."""
    flags = ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", output_dir, "--max_steps", "4",
             "--per_device_train_batch_size", str(4 // processes), "--logging_steps", "1", "--max_length", "64",
             "--learning_rate", "1e-3", "--seed", "3", "--save_strategy", "steps", "--save_steps", "2", "--use_peft",
             # the same batches at every world size: sequential order is sharded into the same global batches,
             # whereas random and length-grouped orders depend on the process count; no dropout noise either
             "--train_sampling_strategy", "sequential", "--lora_dropout", "0", *extra]
    env = {"OMP_NUM_THREADS": "1"}  # the test machine is small: one thread per process
    if processes == 1:
        return run_script("sft.py", *flags, env=env)
    # `--cpu` (or MULTI_CPU) would start ONE process in accelerate 1.15; --multi_gpu selects torchrun, and sft.py
    # trains on the CPU without CUDA, where accelerate picks gloo
    return run_script(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                      str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                      "--main_process_port", str(free_port()), "sft.py", *flags, env=env)


def losses(folder):
    return [entry["loss"] for entry in json.loads((folder / "trainer_state.json").read_text())["log_history"]
            if "loss" in entry]


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One process with batch 4, two processes with batch 2 each, and the 2-process run resumed from step 2."""
    tmp = tmp_path_factory.mktemp("scale")
    records = [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}."} for i in range(24)]
    data = str(write_json(tmp / "train.json", records))
    one, two, resumed = tmp / "one", tmp / "two", tmp / "resumed"
    results = {"one": launch(1, tiny_model_dir, data, one), "two": launch(2, tiny_model_dir, data, two)}
    if results["two"].returncode == 0:
        resumed.mkdir()  # a 2-process run killed after its first checkpoint
        shutil.copytree(two / "checkpoint-2", resumed / "checkpoint-2")
        results["resumed"] = launch(2, tiny_model_dir, data, resumed, "--resume_from_checkpoint", "True")
    return {"one": one, "two": two, "resumed": resumed, "results": results}


def test_two_processes_train_and_log_the_summary_once(runs):
    result = runs["results"]["two"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("Trainable parameters") == 1
    assert "2 per device x 1 accumulation x 2 processes = 4 examples" in result.stderr
    assert result.stderr.count("Done: model in") == 1


def test_two_processes_give_the_loss_curve_of_one_process_with_the_same_global_batch(runs):
    assert runs["results"]["one"].returncode == 0, runs["results"]["one"].stderr[-3000:]
    assert runs["results"]["two"].returncode == 0
    one, two = losses(runs["one"]), losses(runs["two"])
    assert len(one) == len(two) == 4
    # the same examples in every step: only float summation order differs (gloo all-reduce of two half batches)
    assert two == pytest.approx(one, rel=1e-3)


def test_two_processes_write_a_complete_output_folder(runs):
    assert runs["results"]["two"].returncode == 0
    names = {p.name for p in runs["two"].iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
            "trainer_state.json", "all_results.json", "README.md", "training_loss.png", "checkpoint-2",
            "checkpoint-4"} <= names
    one = {p.name for p in runs["one"].iterdir()}
    assert {name for name in one if not name.startswith(".")} <= names


def test_two_processes_leave_no_temporary_folder(runs):
    assert runs["results"]["two"].returncode == 0
    assert not [p.name for p in runs["two"].iterdir() if p.name.startswith(".final")]


def test_resume_under_two_processes_continues_the_same_run(runs):
    result = runs["results"].get("resumed")
    assert result is not None and result.returncode == 0, (result.stderr[-3000:] if result else "no 2-process run")
    assert losses(runs["resumed"]) == pytest.approx(losses(runs["two"]), rel=1e-4)
    from safetensors.torch import load_file

    a = load_file(runs["two"] / "adapter_model.safetensors")
    b = load_file(runs["resumed"] / "adapter_model.safetensors")
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)
