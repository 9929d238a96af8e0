"""export.py: a GGUF and an Ollama Modelfile from a finished run, checked against the trained model."""

import errno
import json
import re
import shutil
from pathlib import Path
from unittest import mock

import pytest
from conftest import lonely_copy, load_script, run_script, run_sft, write_json

sft = load_script("sft")
export = load_script("export")


def train_command(model, data, output_dir, *extra):
    return ["sft.py", "--model_name_or_path", model, "--dataset_name", data, "--output_dir", output_dir,
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_length", "128", "--learning_rate", "1e-3",
            "--use_peft", "--plots", "False", *extra]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    records = [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}."} for i in range(16)]
    return str(write_json(tmp_path_factory.mktemp("data") / "train.json", records))


@pytest.fixture(scope="module")
def tiny_lora_run(tiny_model_dir, train_file, tmp_path_factory):
    """Trained by a copy of sft.py alone in an empty folder (tests/test_standalone.py): no sibling script, no examples/."""
    folder = tmp_path_factory.mktemp("runs")
    command = train_command(tiny_model_dir, train_file, folder / "tiny-lora")
    result = run_script(lonely_copy("sft.py", folder / "alone"), *command[1:], cwd=folder / "alone")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "tiny-lora"


def parse_modelfile(text):
    """Ollama's Modelfile syntax: `INSTRUCTION argument` lines, an argument in triple quotes may span lines."""
    commands, lines = [], iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        keyword, argument = line.split(" ", 1)
        if argument.startswith('"""'):
            argument = argument[3:]
            while not argument.endswith('"""'):
                argument += "\n" + next(lines)
            argument = argument[:-3]
        commands.append((keyword.upper(), argument))
    return commands


def render_ollama(template, system, prompt, response):
    """Render the subset of Go templates that export.py writes: if/else/end on .System, .System, .Prompt, .Response."""
    template = re.sub(r"\{\{ if \.System \}\}(.*?)\{\{ else \}\}(.*?)\{\{ end \}\}",
                      lambda m: m.group(1) if system else m.group(2), template, flags=re.S)
    return template.replace("{{ .System }}", system).replace("{{ .Prompt }}", prompt).replace(
        "{{ .Response }}", response)


@pytest.mark.parametrize("template", ["chat", "mistral", "llama2", "alpaca", "none"])
def test_ollama_template_renders_like_the_trained_template(tokenizer, template):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if template in sft.PROMPT_TEMPLATES:
        tok.chat_template = sft.PROMPT_TEMPLATES[template]
    go_template, _ = export.ollama_template(tok, strip_bos=False)
    turn = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5."}]
    for system in ("", "Be brief."):
        messages = ([{"role": "system", "content": system}] if system else []) + turn
        expected = tok.apply_chat_template(messages, tokenize=False)
        asked = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        generated = expected[len(asked):].split("5.")[0] + "5."  # what the model was trained to generate
        assert render_ollama(go_template, system, "What is 2 + 3?", generated) == expected


def test_tiny_lora_export_f32_reads_back_exactly(tiny_lora_run, tokenizer, tmp_path):
    from gguf import GGUFReader

    # a copy of export.py alone in an empty folder (tests/test_standalone.py)
    result = run_script(lonely_copy("export.py", tmp_path), "--export_type", "f32", "--output_dir", tiny_lora_run,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tiny_lora_run / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "checks.json", "model-f32.gguf"]
    check = json.loads((folder / "checks.json").read_text())["f32"]
    # transformers' GGUF reader gets back exactly the merged weights, tokenizer, template and EOS
    assert check["max_weight_error"] == 0 and check["identical"] == check["prompts"] == 5
    assert check["prompt_tokens_identical"] and check["chat_template_kept"] and check["eos_token"] == "<|im_end|>"
    assert "first 5 train prompts" in check["prompts_from"]
    card = (tiny_lora_run / "README.md").read_text()
    assert "## GGUF export" in card and "| `export/model-f32.gguf` | f32 |" in card and "| 5/5 | 100.0% |" in card
    fields = GGUFReader(folder / "model-f32.gguf").fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["tokenizer.chat_template"].contents() == (tiny_lora_run / "chat_template.jinja").read_text()
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.pre"].contents() == "smollm"
    commands = parse_modelfile((folder / "Modelfile").read_text())
    assert commands[0] == ("FROM", "./model-f32.gguf")
    template = dict(commands)["TEMPLATE"]
    assert render_ollama(template, "", "Hi", "Hello") == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], tokenize=False)
    stops = [json.loads(arg.split(" ", 1)[1]) for keyword, arg in commands if keyword == "PARAMETER"]
    assert stops == ["<|im_end|>", "<|im_start|>"]


@pytest.mark.parametrize("export_type,bound", [("q8_0", 0.01), ("q4_0", 0.15)])
def test_quantized_weights_read_back_within_the_quantization_error(tiny_lora_run, tmp_path, export_type, bound):
    import torch
    from transformers import AutoModelForCausalLM

    adapter = json.loads((tiny_lora_run / "adapter_config.json").read_text())
    weights = {name: tensor.detach().float() for name, tensor in
               export.load_trained(tiny_lora_run, adapter).merge_and_unload().state_dict().items()}
    config = export.check_export(tiny_lora_run, export_type, False)[1]
    tokenizer = export.load_tokenizer(str(tiny_lora_run))
    target = tmp_path / f"model-{export_type}.gguf"
    export.write_gguf(target, weights, config, tokenizer, tiny_lora_run, export_type, "smollm")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=target.name, dtype=torch.float32).state_dict()
    for name, tensor in weights.items():
        error = (loaded[name] - tensor).abs().max() / tensor.abs().max()
        assert error <= (bound if tensor.dim() > 1 else 0), name  # vectors (norms) stay f32



def test_tensor_types_follow_llama_cpp_conventions():
    import numpy as np
    from gguf import GGMLQuantizationType as Q

    matrix, vector, odd = np.zeros((8, 64)), np.zeros(64), np.zeros((8, 48))
    assert export.gguf_tensor_type("blk.0.attn_q.weight", matrix, Q.Q4_0) == Q.Q4_0
    assert export.gguf_tensor_type("blk.0.attn_norm.weight", vector, Q.Q4_0) == Q.F32  # vectors stay f32
    for name in ("token_embd.weight", "output.weight"):  # the vocabulary matrices keep 8 bits in 4/5-bit files
        assert export.gguf_tensor_type(name, matrix, Q.Q5_1) == Q.Q8_0
    assert export.gguf_tensor_type("blk.0.ffn_up.weight", odd, Q.Q8_0) == Q.F16  # rows of 48 fill no 32-blocks


def test_export_refuses_bad_input_in_one_line(tiny_lora_run, tiny_model_dir, tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    def error(run, export_type="q8_0"):
        with pytest.raises(SystemExit) as raised:
            export.check_export(Path(run), export_type, False)
        return str(raised.value)

    (tmp_path / "empty").mkdir()
    assert "holds no finished model" in error(tmp_path / "empty")
    assert "holds no finished model" in error(tmp_path / "missing")
    assert "--export_type q3_k: choose one of" in error(tiny_lora_run, "q3_k")
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).save_pretrained(gpt2)
    tokenizer.save_pretrained(gpt2)
    assert "cannot export model_type 'gpt2' to GGUF" in error(gpt2)
    (tmp_path / "done" / "export").mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_model_dir) / name, tmp_path / "done" / name)
    (tmp_path / "done" / "export" / "model-q8_0.gguf").write_bytes(b"GGUF")
    assert "model-q8_0.gguf already exists; pass --overwrite_output_dir" in error(tmp_path / "done")
    assert export.check_export(tmp_path / "done", "q8_0", True)[2].name == "model-q8_0.gguf"
    result = run_script("export.py", "--output_dir", tmp_path / "empty")
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_check_prompts_come_from_the_run_and_a_broken_file_is_a_one_line_error(tmp_path):
    assert export.export_check_prompts(tmp_path)[1] == "generic prompts (the run saved none)"
    record = {"split": "eval", "messages": [{"role": "user", "content": "Hi"}]}
    (tmp_path / "sample_prompts.jsonl").write_text(json.dumps(record) + "\n\n{broken\n")
    with pytest.raises(SystemExit) as raised:
        export.export_check_prompts(tmp_path)
    assert str(raised.value).startswith(f"error: {tmp_path / 'sample_prompts.jsonl'}:3: invalid JSON")
    for line in ("[1, 2]", '{"split": "eval"}'):  # valid JSON, but no prompt
        (tmp_path / "sample_prompts.jsonl").write_text(json.dumps(record) + "\n" + line + "\n")
        with pytest.raises(SystemExit, match=r"sample_prompts.jsonl:2: not an object with a 'messages' list"):
            export.export_check_prompts(tmp_path)
    (tmp_path / "sample_prompts.jsonl").write_text(json.dumps(record) + "\n")
    assert export.export_check_prompts(tmp_path) == ([record["messages"]], "the run's first 1 eval prompts")


def test_a_full_disk_leaves_no_gguf_behind(tiny_model_dir, tmp_path):
    import gguf

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)

    def fill_disk(writer, **kwargs):
        writer.fout[0].write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch.object(gguf.GGUFWriter, "write_tensors_to_file", fill_disk), pytest.raises(SystemExit) as raised:
        export.export_gguf(run, "f16")
    assert "No space left on device" in str(raised.value) and "nothing was kept" in str(raised.value)
    assert [p.name for p in (run / "export").iterdir()] == []


def test_qlora_adapter_merges_into_a_full_precision_base(tiny_model_dir, train_file, tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "qlora"
    result = run_script(*train_command(tiny_model_dir, train_file, out, "--load_in_4bit", "--max_steps", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script("export.py", "--output_dir", out, "--merge_only")
    assert result.returncode == 0, result.stderr[-3000:]
    again = run_script("export.py", "--output_dir", out, "--merge_only")  # refused before any model loads
    assert again.returncode != 0 and "merged already exists; pass --overwrite_output_dir" in again.stderr
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    merged = load_file(out / "merged" / "model.safetensors")
    adapter = load_file(out / "adapter_model.safetensors")
    config = json.loads((out / "adapter_config.json").read_text())
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    delta = adapter[f"{prefix}.lora_B.weight"].float() @ adapter[f"{prefix}.lora_A.weight"].float() * (
        config["lora_alpha"] / config["r"])
    name = "model.layers.0.self_attn.q_proj.weight"
    # base + the adapter's update, to float rounding: merging into NF4 weights would be off by ~1e-2 everywhere
    assert torch.allclose(merged[name].float(), base[name] + delta, atol=1e-5)
    assert delta.abs().max() > 0


def test_default_model_lora_run_exports_f16_with_the_trained_outputs(default_model_dir, train_file, tmp_path):
    # both commands in this process (their start-ups cost more than the work; the command lines themselves are run
    # as subprocesses by the tests above): a failed one raises
    out = tmp_path / "smollm2-lora"
    run_sft(*train_command(default_model_dir, train_file, out, "--max_steps", "1")[1:])
    export.main(export.parse_arguments(["--export_type", "f16", "--output_dir", str(out)]))
    check = json.loads((out / "export" / "checks.json").read_text())["f16"]
    # f16 rounding of SmolLM2's weights does not change one greedy token of the trained model (adapter unmerged)
    assert check["identical"] == check["prompts"] == 5 and check["prompt_tokens_identical"]
    assert 0 < check["max_weight_error"] < 1e-3 and check["chat_template_kept"]
    assert check["sample"]["gguf"] == check["sample"]["reference"]
    assert "| `export/model-f16.gguf` | f16 |" in (out / "README.md").read_text()


def test_merge_only_needs_a_lora_adapter(tmp_path):
    with pytest.raises(SystemExit, match="holds no adapter .* --merge_only merges a finished sft.py --use_peft run"):
        export.write_merged(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(SystemExit, match="a PROMPT_TUNING adapter cannot be merged into its base; only LoRA can"):
        export.write_merged(tmp_path)
    assert not (tmp_path / "merged").exists()
