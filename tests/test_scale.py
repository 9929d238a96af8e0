"""Scaling up: the accelerate config files, benchmarks/estimate_memory.py, 2-process data-parallel training on CPU."""

import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, load_script, run_script, run_sft, write_json

sft = load_script("sft")
estimate_memory = load_script("benchmarks/estimate_memory").estimate_memory

CONFIGS = {
    "ddp.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP",
    "deepspeed_zero2.yaml": "DEEPSPEED",
    "deepspeed_zero3.yaml": "DEEPSPEED",
    "cpu.yaml": "MULTI_GPU",  # see the file: MULTI_CPU / use_cpu would start a single process
    "multi_node.yaml": "MULTI_GPU",
}


@pytest.mark.parametrize("name,distributed_type", CONFIGS.items())
def test_accelerate_config_files_load(name, distributed_type):
    from accelerate.commands.config.config_args import load_config_from_file

    path = ROOT / "examples" / "accelerate" / name
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# make ") and (f"--config_file examples/accelerate/{name}" in first_line
                                                 or f"ACCELERATE_CONFIG=examples/accelerate/{name}" in first_line)
    raw = yaml.safe_load(path.read_text())
    assert {"compute_environment", "distributed_type", "num_machines", "num_processes", "mixed_precision"} <= set(raw)
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == distributed_type and config.num_processes == 2
    if name in ("cpu.yaml", "multi_node.yaml"):
        assert config.mixed_precision == "no" and not config.use_cpu
    else:
        assert config.mixed_precision == "bf16"
    if name == "multi_node.yaml":
        assert config.num_machines == 2 and config.machine_rank == 0 and config.rdzv_backend == "static"
        assert config.main_process_ip and config.main_process_port
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
    estimate = estimate_memory(AutoConfig.from_pretrained(default_model_dir), references=False)
    assert estimate["params"] == pytest.approx(real, rel=0.02)


def test_estimate_from_a_config_dict():
    estimate = estimate_memory(LLAMA2_7B, "Llama-2-7B", batch_size=4, max_length=1024, lora_r=16)
    assert estimate["params"] == pytest.approx(6.738e9, rel=0.01)
    assert estimate["lora_params"] == 39_976_960  # PEFT's count for r=16 on every linear layer of Llama-2-7B
    full, lora, qlora = estimate["rows"].values()
    assert full["weights"] + full["grads+optimizer"] == pytest.approx(18 * 6.738e9 / 2**30, rel=0.01)
    assert full["total_ckpt"] > lora["total_ckpt"] > qlora["total_ckpt"]
    assert qlora["weights"] == pytest.approx(3.5, rel=0.1)  # ~0.52 B/param for the layers, bf16 embeddings
    for row in estimate["rows"].values():
        assert row["activations_ckpt"] < row["activations"] / 5  # checkpointing keeps ~1 layer of 32
    doubled = estimate_memory(LLAMA2_7B, batch_size=8, max_length=1024, references=False)
    assert doubled["rows"]["full"]["activations"] == pytest.approx(2 * full["activations"])
    only_qv = estimate_memory(LLAMA2_7B, lora_target_modules=["q_proj", "v_proj"], references=False)
    assert only_qv["lora_params"] == 32 * 2 * 16 * (4096 + 4096)
    for reference in ("Llama-3.2-1B", "Phi-3-mini", "Llama-2-7B", "Mistral-7B"):
        assert reference in estimate["table"]


def test_estimate_needs_a_decoder_config():
    with pytest.raises(SystemExit, match="only decoder-only Llama-style models"):
        estimate_memory({"d_model": 512}, "t5-small")


def test_estimate_memory_takes_sft_flags_and_prints_the_table_without_data_or_weights(tiny_model_dir):
    result = run_script("benchmarks/estimate_memory.py", "--model_name_or_path", tiny_model_dir,
                        "--per_device_train_batch_size", "4", "--max_length", "256", "--dtype", "bfloat16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch 4 x 256 tokens" in result.stdout and "LoRA r=16" in result.stdout
    assert "Mistral-7B" in result.stdout and "frozen weights 2 B/param" in result.stdout


def test_estimate_memory_refuses_an_encoder_decoder_and_sft_points_to_it(tiny_t5_dir):
    with pytest.raises(SystemExit, match="estimate_memory.py sizes decoder-only .Llama-style. models; .* is an "
                                         "encoder-decoder .t5."):
        load_script("benchmarks/estimate_memory").main(["--model_name_or_path", tiny_t5_dir])
    with pytest.raises(SystemExit, match="--estimate_memory moved to benchmarks/estimate_memory.py"):
        sft.parse_arguments(["--estimate_memory", "--model_name_or_path", tiny_t5_dir])


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
    if processes == 1:  # in this process: no start-up (~10 s); a failure is a non-zero code, as from a subprocess
        try:
            run_sft(*flags)
        except (SystemExit, Exception) as error:
            return subprocess.CompletedProcess(["sft.py", *flags], 1, "", f"{type(error).__name__}: {error}")
        return subprocess.CompletedProcess(["sft.py", *flags], 0, "", "")
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


# ------------------------------------------------------------------- two "nodes" on this machine (multi-node, CPU)
# Two launchers on 127.0.0.1, NODE_RANK 0 and 1, one process each over gloo: the multi-node path as a user runs it
# (one command per node), with the launcher flags taken from the Makefile's own command.


def make_launcher(*variables):
    """The launcher `make instruct-train` runs with these variables: the words before sft.py."""
    result = run_script("make", "-n", "--no-print-directory", "instruct-train", "DATA_OUT=examples/instruct",
                        "OUT=unused", *variables)
    assert result.returncode == 0, result.stderr
    words = shlex.split(next(line for line in result.stdout.splitlines() if " sft.py " in line))
    return words[: words.index("sft.py")]


@pytest.mark.parametrize("variables,torchrun", [
    (["NNODES=2", "NODE_RANK=1", "MASTER_ADDR=10.0.0.7", "MASTER_PORT=29555", "NPROC=4"],
     dict(nnodes="2", node_rank=1, nproc_per_node="4", master_addr="10.0.0.7", master_port="29555",
          rdzv_backend="static")),
    (["NNODES=3", "NODE_RANK=2", "MASTER_ADDR=node-a", "RDZV=c10d"],  # one process per node by default
     dict(nnodes="3", node_rank=2, nproc_per_node="1", rdzv_endpoint="node-a:29500", rdzv_backend="c10d")),
    (["NPROC=2"], dict(nproc_per_node="2", rdzv_backend="static")),
])
def test_make_gives_each_node_its_launch_command(variables, torchrun):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    launcher = make_launcher(*variables)
    assert launcher[:2] == ["accelerate", "launch"] and "--multi_gpu" in launcher
    args = _validate_launch_command(launch_command_parser().parse_args([*launcher[2:], "sft.py"]))[0]
    prepare_multi_gpu_env(args)  # what accelerate hands to torchrun
    assert {name: getattr(args, name, None) for name in torchrun} == torchrun
    assert args.mixed_precision == "no"  # sft.py picks bf16 itself where the hardware has it


def test_make_puts_an_accelerate_config_under_the_node_flags():
    launcher = make_launcher("NNODES=2", "NODE_RANK=1", "NPROC=8", "ACCELERATE_CONFIG=examples/accelerate/fsdp.yaml")
    assert launcher[2:4] == ["--config_file", "examples/accelerate/fsdp.yaml"] and "--multi_gpu" not in launcher
    assert " ".join(launcher).endswith("--num_processes 16 --num_machines 2 --machine_rank 1 --main_process_ip "
                                       "127.0.0.1 --main_process_port 29500 --rdzv_backend static --same_network")
    assert make_launcher() == ["python"]


def start_node(rank, port, model, data, output_dir, *extra):
    """One node's training launcher, output to OUTPUT_DIR-node<rank>.log."""
    flags = ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", output_dir, "--max_steps", "4",
             "--per_device_train_batch_size", "2", "--logging_steps", "1", "--max_length", "64",
             "--learning_rate", "1e-3", "--seed", "3", "--save_strategy", "steps", "--save_steps", "2", "--use_peft",
             "--train_sampling_strategy", "sequential", "--lora_dropout", "0", *extra]  # launch()'s run, batch 2 x 2
    return launch_node(rank, port, "sft.py", flags, Path(output_dir).parent / f"{Path(output_dir).name}-node{rank}.log")


def launch_node(rank, port, script, flags, log):
    """One node's launcher of `script`, in a session of its own (so that the whole node can be killed), output to log."""
    launcher = make_launcher("NNODES=2", f"NODE_RANK={rank}", "MASTER_ADDR=127.0.0.1", f"MASTER_PORT={port}")
    with open(log, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", *launcher[2:], script, *map(str, flags)], cwd=ROOT,
            stdout=stream, stderr=subprocess.STDOUT, start_new_session=True, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    process.log = log
    return process


def kill_node(process, signal_number=signal.SIGKILL):
    """A node dies (or freezes, SIGSTOP): its launcher and every worker it started (torchrun puts workers in sessions
    of their own, so killing the launcher's alone would leave them training)."""
    import psutil

    try:
        parent = psutil.Process(process.pid)
        for member in [parent, *parent.children(recursive=True)]:
            member.send_signal(signal_number)
    except psutil.NoSuchProcess:
        pass


def run_two_nodes(model, data, output_dir, *extra, timeout=600):
    port = free_port()
    nodes = [start_node(rank, port, model, data, output_dir, *extra) for rank in (0, 1)]
    try:
        codes = [node.wait(timeout=timeout) for node in nodes]
    finally:
        for node in nodes:
            kill_node(node)
    return codes, [node.log.read_text() for node in nodes]


@pytest.fixture(scope="module")
def nodes(runs, tiny_model_dir, tmp_path_factory):
    """The 2-process run of `runs` on two nodes of one process each, and again resumed from its step-2 checkpoint."""
    tmp = tmp_path_factory.mktemp("nodes")
    data = str(next(runs["one"].parent.glob("train.json")))
    two, resumed = tmp / "two", tmp / "resumed"
    results = {"two": run_two_nodes(tiny_model_dir, data, two)}
    if results["two"][0] == [0, 0]:
        resumed.mkdir()  # a two-node run stopped after its first checkpoint
        shutil.copytree(two / "checkpoint-2", resumed / "checkpoint-2")
        results["resumed"] = run_two_nodes(tiny_model_dir, data, resumed, "--resume_from_checkpoint", "True")
    return {"two": two, "resumed": resumed, "results": results, "data": data}


def test_two_nodes_train_like_one_process_and_write_once(nodes, runs):
    codes, logs = nodes["results"]["two"]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert runs["results"]["one"].returncode == 0
    one, two = losses(runs["one"]), losses(nodes["two"])
    assert len(two) == 4 and two == pytest.approx(one, rel=1e-3)  # the tolerance of the 2-process check above
    # the summary, the final save and the "done" line come from global rank 0 only (on node 0)
    assert logs[0].count("Trainable parameters") == 1 and "Trainable parameters" not in logs[1]
    assert "2 per device x 1 accumulation x 2 processes = 4 examples" in logs[0]
    assert logs[0].count("Done: model in") == 1 and "Done: model in" not in logs[1]
    names = {p.name for p in nodes["two"].iterdir()}
    assert {"adapter_model.safetensors", "trainer_state.json", "checkpoint-2", "checkpoint-4"} <= names
    assert not [name for name in names if name.startswith(".")]
    # one model per checkpoint, plus each rank's random state, which resuming on the same two nodes needs
    checkpoint = {p.name for p in (nodes["two"] / "checkpoint-2").iterdir()}
    assert {"adapter_model.safetensors", "optimizer.pt", "rng_state_0.pth", "rng_state_1.pth"} <= checkpoint


def test_resume_on_two_nodes_continues_the_same_run(nodes):
    assert "resumed" in nodes["results"], "the two-node run failed"
    codes, logs = nodes["results"]["resumed"]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert losses(nodes["resumed"]) == pytest.approx(losses(nodes["two"]), rel=1e-4)


def test_eval_on_two_nodes_splits_and_gathers_rows_in_order(nodes, tmp_path):
    assert nodes["results"]["two"][0] == [0, 0]
    records = [{"prompt": f"Add {i} and {i + 1}.", "completion": f"{2 * i + 1}."} for i in range(5)]
    data = write_json(tmp_path / "test.jsonl", records, lines=True)
    flags = ["--model_name_or_path", nodes["two"], "--dataset", data, "--max_new_tokens", "4",
             "--metrics", "exact_match,perplexity"]
    single = run_script("eval.py", *flags, "--output_dir", tmp_path / "one", env={"OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    port = free_port()
    nodes_ = [launch_node(rank, port, "eval.py", [*flags, "--output_dir", tmp_path / "two"], tmp_path / f"eval-{rank}.log")
              for rank in (0, 1)]
    for node in nodes_:
        node.wait(timeout=300)
    outputs = [node.log.read_text() for node in nodes_]
    assert [node.returncode for node in nodes_] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "2 processes share the 5 examples" in outputs[0]
    assert "| metric |" in outputs[0] and "| metric |" not in outputs[1]  # rank 0 alone prints and writes
    rows = [(tmp_path / name / "predictions.jsonl").read_text() for name in ("one", "two")]
    assert rows[1] == rows[0]
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two")]
    assert metrics[1]["perplexity"] == pytest.approx(metrics[0]["perplexity"], rel=1e-4)


@pytest.mark.parametrize("failure", ["killed", "frozen"])
def test_a_dead_node_stops_the_other_with_one_line(failure, tiny_model_dir, tmp_path):
    """Node 1 dies (SIGKILL: its connections close) or freezes (SIGSTOP: nothing answers, --ddp_timeout runs out):
    node 0 exits non-zero within seconds, with one line that says what happened, instead of waiting forever."""
    records = [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}."} for i in range(24)]
    data = str(write_json(tmp_path / "train.json", records))
    port = free_port()
    extra = ["--max_steps", "100000", "--save_steps", "100000", "--ddp_timeout", "10"]
    nodes_ = [start_node(rank, port, tiny_model_dir, data, tmp_path / "out", *extra) for rank in (0, 1)]
    try:
        deadline = time.time() + 300
        while "'loss'" not in nodes_[0].log.read_text() and time.time() < deadline and nodes_[0].poll() is None:
            time.sleep(1)  # training has started on both nodes
        assert "'loss'" in nodes_[0].log.read_text(), nodes_[0].log.read_text()[-3000:]
        kill_node(nodes_[1], signal.SIGKILL if failure == "killed" else signal.SIGSTOP)
        started = time.time()
        code = nodes_[0].wait(timeout=120)
        elapsed = time.time() - started
    finally:
        for node in nodes_:
            kill_node(node)
    assert code != 0 and elapsed < 60
    lines = [line for line in nodes_[0].log.read_text().replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "another process or node of this run died or stopped answering" in lines[0], lines
    assert "--resume_from_checkpoint True" in lines[0]
    assert ("Timed out" in lines[0]) == (failure == "frozen")


def test_slurm_script_starts_one_launcher_per_node_with_its_rank(tmp_path):
    """examples/slurm/train.sbatch under stand-ins for scontrol, srun (two nodes) and make, which record the calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "scontrol": 'printf "node-a\\nnode-b\\n"',
        "srun": 'while [[ $1 == -* ]]; do shift; done; for id in 0 1; do SLURM_NODEID=$id SLURM_NNODES=2 "$@"; done',
        "make": f'echo "make $*" >> {tmp_path}/calls',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_SUBMIT_DIR": str(ROOT),
           "CASE": "skills", "NPROC": "8", "ARGS": "--max_steps 20 --seed 1"}
    result = run_script("bash", ROOT / "examples" / "slurm" / "train.sbatch", env=env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "make --no-print-directory skills-train LAUNCH=true"  # the data step, once
    for rank in (0, 1):
        assert calls[1 + rank] == (f"make --no-print-directory skills-train NNODES=2 NODE_RANK={rank} "
                                   "MASTER_ADDR=node-a MASTER_PORT=29500 NPROC=8 ARGS=--max_steps 20 --seed 1")
    assert calls[3:] == ["make --no-print-directory skills-eval ARGS="]


def test_data_preparation_runs_on_rank_0_then_once_per_node_then_everywhere():
    """sft.node_first with accelerate's own main_process_first / local_main_process_first, for 2 nodes x 2 processes
    (threads sharing one barrier as the process group): rank 0 alone, then node 1's first process, then the rest."""
    import threading

    from accelerate import PartialState

    barrier, order, lock = threading.Barrier(4, timeout=30), [], threading.Lock()

    class State:  # PartialState's methods on a stand-in whose barrier is a thread barrier
        _goes_first = PartialState._goes_first
        main_process_first = PartialState.main_process_first
        local_main_process_first = PartialState.local_main_process_first

        def __init__(self, rank):
            self.is_main_process, self.is_local_main_process = rank == 0, rank % 2 == 0

        def wait_for_everyone(self):
            barrier.wait()

    def process(rank):
        with sft.node_first(State(rank)):
            with lock:
                order.append(rank)
            time.sleep(0.2)  # a process that went early would show up before the others' turn

    threads = [threading.Thread(target=process, args=(rank,)) for rank in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert order[:2] == [0, 2] and sorted(order[2:]) == [1, 3]
