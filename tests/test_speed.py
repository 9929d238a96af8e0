"""sft.py's CPU speed path (--cpu_fast_path) gives the same loss, metrics and gradients as TRL's plain path."""

import pytest
import torch
from conftest import load_script, run_sft


def loss_and_grads(model_dir, fast, lora, compile_head=False):
    """One bf16-autocast forward/backward of a batch with prompt (-100) and padded positions, as SFTTrainer runs it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    sft = load_script("sft")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if lora:  # a random (not zero) adapter B, so that every adapter matrix gets a gradient
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    base = model.get_base_model() if lora else model
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))  # what SFTTrainer does
    if fast:
        assert sft.add_cpu_lm_head(base, compile_head=compile_head)
    ids = torch.randint(0, 1000, (3, 12))
    labels = ids.clone()
    labels[:, :5] = -100  # prompt
    attention_mask = torch.ones_like(ids)
    attention_mask[2, 9:] = 0  # padding
    labels[2, 9:] = -100
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora,compile_head", [(True, False), (False, False), (True, True)])
def test_cpu_fast_path_gives_the_same_loss_and_gradients(tiny_model_dir, lora, compile_head, caplog):
    plain, plain_grads = loss_and_grads(tiny_model_dir, fast=False, lora=lora)
    fast, fast_grads = loss_and_grads(tiny_model_dir, fast=True, lora=lora, compile_head=compile_head)
    assert "Compiling the loss head failed" not in caplog.text  # compiled where asked, not the fallback
    assert fast.log_probs.dtype == torch.float32 and fast.log_probs.shape == plain.log_probs.shape
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(fast.log_probs, plain.log_probs, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(fast.entropy, plain.entropy, rtol=1e-2, atol=1e-2)
    assert torch.equal(fast.is_top1, plain.is_top1) and torch.equal(fast.label_mask, plain.label_mask)
    assert fast_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():  # bf16 matmuls either way: agree to bf16 rounding, relative to the tensor
        assert (fast_grads[name] - grad).norm() <= 2e-2 * grad.norm() + 1e-6, name


def test_a_loss_head_that_fails_to_compile_runs_uncompiled(monkeypatch, caplog):
    sft = load_script("sft")

    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(sft.torch, "compile", lambda fn, **kwargs: broken)
    scores = sft.compiled_scores()
    logits, targets = torch.randn(5, 11), torch.randint(0, 11, (5,))
    for _ in range(2):  # one warning, then straight to the uncompiled head
        for value, expected in zip(scores(logits, targets), sft.completion_scores(logits, targets)):
            assert torch.equal(value, expected)
    warnings = [r.getMessage() for r in caplog.records if "Compiling the loss head failed" in r.getMessage()]
    assert len(warnings) == 1 and "No working C++ compiler" in warnings[0], warnings


@pytest.mark.parametrize("flag,torch_compile,device,expected", [
    (False, False, "cpu", False), (True, False, "cpu", True), (True, True, "cpu", False), (True, False, "mps", False)])
def test_the_loss_head_is_compiled_on_request_on_the_cpu(flag, torch_compile, device, expected):
    from types import SimpleNamespace

    training_args = SimpleNamespace(torch_compile=torch_compile, device=SimpleNamespace(type=device))
    assert load_script("sft").compile_head(training_args, SimpleNamespace(compile_loss_head=flag)) is expected


def test_freed_memory_is_reused_without_page_faults():
    import resource

    assert load_script("sft").keep_freed_memory()  # Linux with glibc, as here and in CI
    faults = []
    for _ in range(8):  # steps that each allocate and free 3 x 64 MB, as a training step does its activations
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step = [torch.ones(16 << 20) for _ in range(3)]
        del step
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # mmap'd and unmapped, every step faults in 3 x 16,384 fresh 4 KB pages; kept, the heap settles within a few steps
    assert sum(faults[-2:]) < 1000, faults


def test_cpu_lm_head_leaves_generation_and_plain_forward_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.randint(0, 1000, (1, 6))
    expected = model.generate(ids, max_new_tokens=4, do_sample=False)
    logits = model(input_ids=ids).logits
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    assert load_script("sft").add_cpu_lm_head(model)
    assert torch.equal(model.generate(ids, max_new_tokens=4, do_sample=False), expected)
    torch.testing.assert_close(model(input_ids=ids).logits, logits)


def shared_prefix_loss_and_grads(sft, model_dir, share, attention, lora):
    """One fp32 forward/backward of a right-padded batch whose rows start with the same 6-token prompt."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attention)
    if lora:
        # CAUSAL_LM as SFTTrainer sets it: PEFT then passes inputs_embeds=None and the like to the model
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False,
                                                 task_type="CAUSAL_LM"))
    base = model.get_base_model() if lora else model
    add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))
    assert sft.add_cpu_lm_head(base, share_prompt_prefix=share)
    ids = torch.randint(0, 1000, (4, 14))
    ids[:, :6] = ids[0, :6]  # the shared prompt start (a system prompt, a skill list)
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 10:] = attention_mask[3, 12:] = 0  # right padding
    labels = ids.masked_fill(attention_mask == 0, -100)
    labels[:, :8] = -100  # prompts: 6 shared tokens, then 2 of each row's own
    labels[2, :11] = -100  # a longer prompt
    out = model(input_ids=ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("lora", [True, False])
def test_shared_prefix_packing_gives_the_same_loss_and_gradients(tiny_model_dir, attention, lora, monkeypatch):
    sft = load_script("sft")
    packed, pack = [], sft.pack_shared_prefix
    monkeypatch.setattr(sft, "pack_shared_prefix", lambda *args: packed.append(pack(*args)) or packed[-1])
    plain, plain_grads = shared_prefix_loss_and_grads(sft, tiny_model_dir, False, attention, lora)
    assert not packed
    shared, shared_grads = shared_prefix_loss_and_grads(sft, tiny_model_dir, True, attention, lora)
    assert len(packed) == 1 and packed[0] is not None
    assert packed[0][0].shape == (1, 6 + 8 + 4 + 8 + 6)  # the prefix once, then each row's own tokens
    torch.testing.assert_close(shared.loss, plain.loss, rtol=1e-5, atol=1e-6)
    assert int(shared.label_mask.sum()) == int(plain.label_mask.sum())
    torch.testing.assert_close(shared.log_probs[shared.label_mask], plain.log_probs[plain.label_mask])
    torch.testing.assert_close(shared.entropy.sum(), plain.entropy.sum())
    assert int(shared.is_top1.sum()) == int(plain.is_top1.sum())
    assert shared_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_pack_shared_prefix_layout():
    pack = load_script("sft").pack_shared_prefix
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 3, 4, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, -100, 8, 9], [-100, -100, -100, 4, -100]])
    ids_, positions, allowed, targets = pack(ids, mask, labels, 0.0)
    assert ids_.tolist() == [[5, 6, 7, 8, 9, 3, 4]]
    assert positions.tolist() == [[0, 1, 2, 3, 4, 2, 3]]
    assert targets.tolist() == [[-100, -100, 8, 9, -100, 4, -100]]  # each row's next token, never across rows
    assert allowed[0, 0, 5].tolist() == [True, True, False, False, False, True, False]  # prefix and itself only
    # rows that agree into their scored tokens share only what comes before the first scored position
    same = torch.tensor([[5, 6, 7, 8, 9, 10]] * 3)
    scored = torch.tensor([[-100, -100, -100, -100, 9, 10]] * 3)
    assert pack(same, torch.ones_like(same), scored, 0.0)[0].tolist() == [[5, 6, 7, 8, 9, 10, 8, 9, 10, 8, 9, 10]]


@pytest.mark.parametrize("case", ["left padding", "nothing to save", "one row"])
def test_pack_shared_prefix_keeps_the_padded_batch_when_it_cannot_help(case):
    pack = load_script("sft").pack_shared_prefix
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    if case == "left padding":
        ids[0, 0], mask[0, 0] = 0, 0
        ids[1] = ids[0]
    if case == "one row":
        ids, mask = ids[:1], mask[:1]
    assert pack(ids, mask, ids.clone(), 0.0) is None


@pytest.mark.parametrize("share,compile_head", [(True, True), (False, False)])
def test_sft_reports_how_many_training_batches_it_packed(tiny_model_dir, tmp_path, share, compile_head, caplog):
    """Through SFTTrainer (PEFT passes extra keyword arguments) packing runs on skills-shaped rows, and all_results.json
    says on what share of the training batches; --share_prompt_prefix False turns it off. The compiled loss head
    trains through it too."""
    import json

    skills = ", ".join(f"skill{i}(argument{i})" for i in range(20))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Skills: {skills}\nUser: request number {i}\nCall:\n",
                                        "completion": f"skill{i}(argument{i}=\"{i}\")"}) + "\n" for i in range(16)))
    args = ["--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", tmp_path / "out",
            "--use_peft", "--max_steps", "2", "--per_device_train_batch_size", "8", "--eval_strategy", "no",
            "--share_prompt_prefix", str(share), "--compile_loss_head", str(compile_head), "--report_to", "none"]
    caplog.set_level("INFO", logger="sft")
    run_sft(*args)
    assert ("compiled loss head" in caplog.text) is compile_head and "Compiling the loss head failed" not in caplog.text
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results.get("train_prefix_packed_share") == (1.0 if share else None)


@pytest.mark.parametrize("share,compile_,expected", [(True, False, True), (False, False, False), (True, True, False)])
def test_prefix_packing_is_off_under_torch_compile(share, compile_, expected):
    """Packed batches change shape and mask every step: under --torch_compile each would recompile."""
    from types import SimpleNamespace

    sft = load_script("sft")
    assert sft.prefix_packing(SimpleNamespace(torch_compile=compile_), SimpleNamespace(share_prompt_prefix=share)) \
        is expected


@pytest.mark.parametrize("case", ["default", "fast path off", "scaled head"])
def test_setup_log_names_the_fast_path_parts_that_applied(tiny_model_dir, tmp_path, case, caplog):
    """The setup log lists what the CPU fast path did, not what its flags asked for: a head that scales its logits
    keeps TRL's head (and so no packing), and --cpu_fast_path False leaves glibc's malloc alone too."""
    import json
    import shutil
    from unittest import mock

    model_dir = tiny_model_dir
    if case == "scaled head":  # config attributes Llama ignores, but add_cpu_lm_head must not
        model_dir = shutil.copytree(tiny_model_dir, tmp_path / "scaled")
        config = json.loads((model_dir / "config.json").read_text())
        (model_dir / "config.json").write_text(json.dumps({**config, "logit_scale": 2.0}))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?", "completion": f"Answer {i}."}) + "\n"
                            for i in range(8)))
    sft = load_script("sft")
    caplog.set_level("INFO", logger="sft")
    with mock.patch.object(sft, "keep_freed_memory", return_value=True) as keep:
        run_sft("--model_name_or_path", model_dir, "--dataset_name", data, "--output_dir", tmp_path / "out",
                "--use_peft", "--max_steps", "1", "--per_device_train_batch_size", "4", "--eval_strategy", "no",
                "--report_to", "none", *(["--cpu_fast_path", "False"] if case == "fast path off" else []))
    expected = {"default": "CPU fast path on (freed memory kept, completion-only loss head, shared prompt prefix "
                           "packing)",
                "fast path off": "CPU fast path off",
                "scaled head": "CPU fast path on (freed memory kept, TRL's LM head: this model's scales or biases its "
                               "logits)"}
    assert expected[case] in caplog.text
    assert keep.called is (case != "fast path off")
