"""sft.py's CPU speed path (--cpu_fast_path) gives the same loss, metrics and gradients as TRL's plain path."""

import pytest
import torch
from conftest import load_script


def loss_and_grads(model_dir, fast, lora):
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
        assert sft.add_cpu_lm_head(base)
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


@pytest.mark.parametrize("lora", [True, False])
def test_cpu_fast_path_gives_the_same_loss_and_gradients(tiny_model_dir, lora):
    plain, plain_grads = loss_and_grads(tiny_model_dir, fast=False, lora=lora)
    fast, fast_grads = loss_and_grads(tiny_model_dir, fast=True, lora=lora)
    assert fast.log_probs.dtype == torch.float32 and fast.log_probs.shape == plain.log_probs.shape
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(fast.log_probs, plain.log_probs, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(fast.entropy, plain.entropy, rtol=1e-2, atol=1e-2)
    assert torch.equal(fast.is_top1, plain.is_top1) and torch.equal(fast.label_mask, plain.label_mask)
    assert fast_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():  # bf16 matmuls either way: agree to bf16 rounding, relative to the tensor
        assert (fast_grads[name] - grad).norm() <= 2e-2 * grad.norm() + 1e-6, name


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
