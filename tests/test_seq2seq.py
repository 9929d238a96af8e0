"""Encoder-decoder models (T5 and kin) in sft.py and eval.py: model kinds, prompt -> encoder and answer -> labels with
one EOS, the length policy on both sides, LoRA and full fine-tuning, resume, --init_adapter, and eval.py on the results.

Training and evaluation run in this process, through each script's own parser and main (no ~15 s of imports per run).
"""

import json
import os
import shutil
from types import SimpleNamespace

import pytest
from conftest import load_script, run_sft, write_json

sft = load_script("sft")
ev = load_script("eval")

# A set a tiny model memorises in a few dozen steps: the base model gets none of it right, the fine-tuned most.
PAIRS = [("What is the capital of France?", "Paris"), ("What is the capital of Germany?", "Berlin"),
         ("What is the capital of Italy?", "Rome"), ("What is the capital of Spain?", "Madrid"),
         ("What color is the sky?", "blue"), ("What color is grass?", "green"),
         ("What color is the sun?", "yellow"), ("Translate good night to German.", "Gute Nacht")]
STEPS = 24


def run_eval(*args):
    from trl import TrlParser

    ev.main(TrlParser([ev.EvalArguments]).parse_args_and_config([str(arg) for arg in args])[0])


def losses(folder, key="loss"):
    return [entry[key] for entry in json.loads((folder / "trainer_state.json").read_text())["log_history"]
            if key in entry]


def t5_tokenizer(tiny_t5_dir, template=None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    tokenizer.chat_template = template or sft.SEQ2SEQ_TEMPLATE
    return tokenizer


def tokenize(tokenizer, examples, max_length=512, max_target_length=None, too_long="truncate"):
    from datasets import Dataset

    dataset = Dataset.from_list(examples)
    data_format = sft.detect_format(dataset.column_names, "test")
    args = SimpleNamespace(max_length=max_length, completion_only_loss=None)
    extra = SimpleNamespace(max_target_length=max_target_length, too_long=too_long)
    return sft.tokenize_seq2seq(dataset, tokenizer, data_format, args, extra)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for these tiny models: two threads spin against each other on a busy 2-core machine (24 LoRA
    steps took 100 s there with two, 6 s with one) and gain nothing on matrices this small."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """train.json in the alpaca format, test.json as prompt/completion: the same pairs, two of the formats."""
    folder = tmp_path_factory.mktemp("capitals")
    write_json(folder / "train.json", [{"instruction": q, "input": "", "output": a} for q, a in PAIRS])
    write_json(folder / "test.json", [{"prompt": q, "completion": a} for q, a in PAIRS])
    return folder


def train_command(model, data, output_dir, *flags):
    return ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", output_dir,
            "--per_device_train_batch_size", "8", "--logging_steps", "1", "--max_length", "64", "--seed", "1",
            "--report_to", "none", *flags]


@pytest.fixture(scope="module")
def lora_run(tiny_t5_dir, data_dir, tmp_path_factory):
    """LoRA on the tiny T5 with the default target modules, a checkpoint halfway, eval loss on test.json."""
    out = tmp_path_factory.mktemp("t5-lora") / "out"
    run_sft(*train_command(tiny_t5_dir, data_dir, out, "--use_peft", "--learning_rate", "1e-2",
                           "--max_steps", STEPS, "--save_strategy", "steps", "--save_steps", STEPS // 2,
                           "--eval_strategy", "steps", "--eval_steps", STEPS // 2))
    return out


@pytest.fixture(scope="module")
def full_run(tiny_t5_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("t5-full") / "out"
    run_sft(*train_command(tiny_t5_dir, data_dir, out, "--learning_rate", "3e-3", "--max_steps", STEPS,
                           "--save_strategy", "no", "--eval_strategy", "no"))
    return out


# --- model kinds ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config,expected", [
    ("LlamaConfig", "causal"), ("GPT2Config", "causal"), ("T5Config", "seq2seq"), ("MT5Config", "seq2seq"),
    ("BartConfig", "seq2seq"), ("BertConfig(is_decoder=True)", "causal"),
])
def test_model_kind_comes_from_the_config(config, expected):
    import transformers

    name, _, flags = config.partition("(")
    kwargs = {"is_decoder": True} if flags else {}
    assert sft.model_kind(getattr(transformers, name)(**kwargs), "m") == expected


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, tiny_t5_dir):
    """A BERT encoder: its config and a tokenizer, and no weights, so any attempt to load them would fail differently."""
    from transformers import BertConfig

    folder = tmp_path_factory.mktemp("bert")
    BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tiny_t5_dir, name), folder / name)
    return folder


@pytest.mark.parametrize("script", ["sft", "eval"])
def test_a_model_of_neither_kind_is_a_one_line_error_before_weights_load(bert_dir, data_dir, tmp_path, script):
    with pytest.raises(SystemExit) as stop:
        if script == "sft":
            run_sft(*train_command(bert_dir, data_dir, tmp_path / "out"))
        else:
            run_eval("--model_name_or_path", bert_dir, "--dataset", data_dir / "test.json")
    error = str(stop.value.code)
    assert error.startswith("error: ") and "\n" not in error
    assert "is a bert model (BertConfig), neither of the two supported kinds" in error
    assert "AutoModelForCausalLM" in error and "AutoModelForSeq2SeqLM" in error and "GPT2Config" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags,message", [
    (["--packing"], "leave --packing out"),
    (["--group_by_prefix", "True"], "--group_by_prefix batches causal-model rows that share a prompt prefix"),
    (["--use_peft", "--lora_target_modules", "q_proj", "v_proj"], "this model's linear layers are k, lm_head, o, q"),
])
def test_flags_that_do_not_apply_to_encoder_decoders_are_one_line_errors(tiny_t5_dir, data_dir, tmp_path, flags,
                                                                          message):
    with pytest.raises(SystemExit) as stop:
        run_sft(*train_command(tiny_t5_dir, data_dir, tmp_path / "out", "--max_steps", "1", *flags))
    assert message in str(stop.value.code) and "\n" not in str(stop.value.code)
    assert not sft.is_finished_model(tmp_path / "out")


def test_max_target_length_on_a_causal_model_is_an_error(tiny_model_dir, data_dir, tmp_path):
    with pytest.raises(SystemExit, match="--max_target_length limits the answers of encoder-decoder models"):
        run_sft(*train_command(tiny_model_dir, data_dir, tmp_path / "out", "--max_target_length", "8"))


def test_group_by_prefix_with_packing_is_an_error(tiny_model_dir, data_dir, tmp_path):
    with pytest.raises(SystemExit, match="it means nothing with --packing"):
        run_sft(*train_command(tiny_model_dir, data_dir, tmp_path / "out", "--group_by_prefix", "True", "--packing"))


# --- prompt -> encoder, answer -> labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("example,prompt,answer", [
    ({"prompt": "What is 2 + 3?", "completion": "5"}, "What is 2 + 3?", "5"),
    ({"instruction": "Translate to German.", "input": "good morning", "output": "Guten Morgen"},
     "Translate to German.\n\ngood morning", "Guten Morgen"),
    ({"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]},
     "Hi", "Hello"),
    ({"conversations": [{"from": "human", "value": "Name a color."}, {"from": "gpt", "value": "Blue."}]},
     "Name a color.", "Blue."),
    # a conversation is flattened into the prompt; its last answer is the target
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                   {"role": "assistant", "content": "Goodbye."}]},
     "Be brief.\n\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:", "Goodbye."),
    ({"prompt": "Say stop.", "completion": "stop</s>"}, "Say stop.", "stop"),  # an EOS in the data is not doubled
])
def test_prompt_goes_to_the_encoder_and_the_answer_to_the_labels_with_one_eos(tiny_t5_dir, example, prompt, answer):
    tokenizer = t5_tokenizer(tiny_t5_dir)
    tokenized, stats = tokenize(tokenizer, [example])
    ids, labels = tokenized[0]["input_ids"], tokenized[0]["labels"]
    eos = tokenizer.eos_token_id
    assert ids == tokenizer(prompt)["input_ids"] and ids[-1] == eos and ids[-2] != eos  # T5's own </s> closes it
    assert labels[-1] == eos and eos not in labels[:-1]
    assert tokenizer.decode(labels, skip_special_tokens=True) == answer
    assert stats == {"examples": 1, "too_long": 0, "kept": 1, "tokens": len(ids) + len(labels),
                     "limit": stats["limit"]}


def test_template_bos_is_not_doubled_and_chat_templates_are_honoured(tiny_t5_dir, tokenizer):
    # BOS-adding tokenizers (BART) would get a second BOS from templates that write one
    ids = sft.encoder_ids(tokenizer, tokenizer.bos_token + "Hi")
    assert ids.count(tokenizer.bos_token_id) <= 1
    t5 = t5_tokenizer(tiny_t5_dir, sft.PROMPT_TEMPLATES["mistral"])
    tokenized, _ = tokenize(t5, [{"prompt": "Hi", "completion": "Hello"}])
    assert t5.decode(tokenized[0]["input_ids"], skip_special_tokens=True) == "[INST] Hi [/INST]"


def test_plain_text_data_is_an_error_for_encoder_decoders(tiny_t5_dir):
    with pytest.raises(SystemExit, match="no prompt/answer split"):
        tokenize(t5_tokenizer(tiny_t5_dir), [{"text": "Just text."}])


@pytest.mark.parametrize("prompt_words,answer_words,max_target_length,too_long,kept,long", [
    (40, 1, None, "truncate", 1, 1),    # long prompt: cut to --max_length, keeps its closing </s>
    (1, 40, None, "truncate", 1, 1),    # long answer: cut to --max_length (the default target limit)
    (1, 12, 8, "truncate", 1, 1),       # --max_target_length is its own limit
    (1, 12, 64, "truncate", 1, 0),
    (40, 40, None, "drop", 0, 1),       # long on both sides counts once
    (1, 1, None, "drop", 1, 0),
])
def test_long_prompts_and_answers_are_counted_then_truncated_or_dropped(tiny_t5_dir, prompt_words, answer_words,
                                                                         max_target_length, too_long, kept, long):
    tokenizer = t5_tokenizer(tiny_t5_dir)
    example = {"prompt": " ".join(["sky"] * prompt_words), "completion": " ".join(["blue"] * answer_words)}
    tokenized, stats = tokenize(tokenizer, [example, {"prompt": "Hi", "completion": "Hello"}], max_length=16,
                                max_target_length=max_target_length, too_long=too_long)
    assert stats["too_long"] == long and stats["kept"] == kept + 1 and stats["examples"] == 2
    assert "--max_length 16 (prompt:" in stats["limit"]
    if kept:
        ids, labels = tokenized[0]["input_ids"], tokenized[0]["labels"]
        assert len(ids) == min(prompt_words + 1, 16) and ids[-1] == tokenizer.eos_token_id
        assert len(labels) == min(answer_words + 1, max_target_length or 16)
        assert stats["tokens"] == len(ids) + len(labels) + len(tokenized[1]["input_ids"]) + len(tokenized[1]["labels"])


# --- training -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_training_memorises_and_writes_a_complete_output_folder(request, kind):
    out = request.getfixturevalue(f"{kind}_run")
    names = {p.name for p in out.iterdir()}
    assert ("adapter_model.safetensors" if kind == "lora" else "model.safetensors") in names
    assert {"tokenizer.json", "chat_template.jinja", "trainer_state.json", "README.md", "training_loss.png"} <= names
    assert not any(name.startswith(".") for name in names)
    trained = losses(out)
    assert len(trained) == STEPS and sum(trained[-3:]) < 0.3 * sum(trained[:3]), trained
    card = (out / "README.md").read_text()
    assert "base_model: " in card and ("LoRA adapter" if kind == "lora" else "full fine-tune") in card
    assert ev.trained_from(out)  # eval.py --compare_base finds the base in both kinds of output


def test_lora_defaults_to_every_t5_linear_layer_and_merges(lora_run):
    from transformers import AutoModelForSeq2SeqLM

    config = json.loads((lora_run / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_2_SEQ_LM"
    # all-linear: attention q/k/v/o and the gated feed-forward wi_0/wi_1/wo of encoder and decoder, not lm_head
    assert sorted(config["target_modules"]) == ["k", "o", "q", "v", "wi_0", "wi_1", "wo"]
    assert (lora_run / "eval_loss.png").exists() and losses(lora_run, "eval_loss")
    merged = AutoModelForSeq2SeqLM.from_pretrained(load_script("export").write_merged(lora_run, overwrite=True))
    assert merged.config.model_type == "t5"


def test_resume_gives_the_same_result_as_an_uninterrupted_run(lora_run, tiny_t5_dir, data_dir, tmp_path):
    from safetensors.torch import load_file

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(lora_run / f"checkpoint-{STEPS // 2}", resumed / f"checkpoint-{STEPS // 2}")
    run_sft(*train_command(tiny_t5_dir, data_dir, resumed, "--use_peft", "--learning_rate", "1e-2",
                           "--max_steps", STEPS, "--save_strategy", "steps", "--save_steps", STEPS // 2,
                           "--eval_strategy", "steps", "--eval_steps", STEPS // 2, "--resume_from_checkpoint", "True"))
    assert losses(resumed) == pytest.approx(losses(lora_run), rel=1e-4)
    a, b = load_file(lora_run / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


def test_init_adapter_keeps_training_the_same_weights(lora_run, tiny_t5_dir, data_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "stage2"
    learning_rate = 1e-3
    run_sft(*train_command(tiny_t5_dir, data_dir, out, "--init_adapter", lora_run, "--learning_rate", learning_rate,
                           "--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no"))
    before, after = load_file(lora_run / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    # Adam's first step moves every weight by at most the learning rate: the stage-one weights, trained on
    steps = [(after[k] - before[k]).abs().max().item() for k in before]
    assert 0 < max(steps) <= learning_rate * 1.01
    assert losses(out)[0] < 0.5 * losses(lora_run)[0]  # it starts where stage one ended, not from scratch


# --- eval.py --------------------------------------------------------------------------------------------------------


def test_eval_generates_scores_and_compares_the_adapter_with_its_base(lora_run, data_dir, tmp_path):
    run_eval("--model_name_or_path", lora_run, "--dataset", data_dir / "test.json", "--compare_base",
             "--max_new_tokens", "8", "--batch_size", "3", "--metrics", "exact_match,perplexity",
             "--output_dir", tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["exact_match"] >= 0.75 and metrics["base"]["exact_match"] == 0
    assert 1 <= metrics["perplexity"] < metrics["base"]["perplexity"]
    # the perplexity of the references is the training objective: exp of the trainer's loss on the same examples
    final_eval_loss = losses(lora_run, "eval_loss")[-1]
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** final_eval_loss, rel=0.05)
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [p["reference"] for p in predictions] == [a for _, a in PAIRS]
    assert all("base_prediction" in p for p in predictions)
    assert sum(p["prediction"] == p["reference"] for p in predictions) == metrics["exact_match"] * len(PAIRS)


def test_batched_generation_matches_one_at_a_time_and_stops_at_eos(full_run, data_dir):
    tokenizer = ev.load_chat_tokenizer(str(full_run), seq2seq=True)
    rows = ev.build_rows(ev.load_records(str(data_dir / "test.json"), None, "test"), tokenizer, "test")
    model, _ = ev.load_model(str(full_run), "float32")
    prompts = [row["prompt"] for row in rows]
    batched = ev.generate(model, tokenizer, prompts, 3, 12)
    assert batched == ev.generate(model, tokenizer, prompts, 1, 12)
    assert sum(p == a for p, (_, a) in zip(batched, PAIRS)) >= 6  # memorised, and stopped at EOS (no run-on text)


def test_eval_of_a_plain_t5_base_uses_plain_prompts(tiny_t5_dir, data_dir, tmp_path):
    run_eval("--model_name_or_path", tiny_t5_dir, "--dataset", data_dir / "test.json", "--max_new_tokens", "2",
             "--metrics", "exact_match", "--output_dir", tmp_path, "--max_samples", "2")
    first = json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == PAIRS[0][0]



def test_bart_trains_and_evaluates_through_the_same_path(tiny_t5_dir, data_dir, tmp_path):
    """Not only T5: a tiny BART (learned positions, decoder starts with </s>, *_proj/fc1/fc2 layers)."""
    import torch
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5_dir)
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.pad_token_id,
                        decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=tokenizer.eos_token_id)
    BartForConditionalGeneration(config).save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")
    out = tmp_path / "out"
    run_sft(*train_command(tmp_path / "bart", data_dir, out, "--use_peft", "--max_steps", "2", "--save_strategy", "no",
                           "--eval_strategy", "no"))
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert {name.rsplit(".", 1)[-1] for name in targets} == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    run_eval("--model_name_or_path", out, "--dataset", data_dir / "test.json", "--max_new_tokens", "3",
             "--metrics", "exact_match,perplexity", "--output_dir", tmp_path / "eval")
    assert 1 < json.loads((tmp_path / "eval" / "metrics.json").read_text())["perplexity"] < float("inf")


def test_prediction_samples_of_an_encoder_decoder_run(lora_run):
    """--log_predictions (default 4) on a seq2seq model: the encoder's prompt, the decoded labels, the decoder's answer."""
    rows = [json.loads(line) for line in (lora_run / f"predictions_step{STEPS}.jsonl").read_text().splitlines()]
    answers = {answer for _, answer in PAIRS}
    assert len(rows) == 4 and all(row["reference"] in answers and row["prompt"] for row in rows)
    assert all(isinstance(row["prediction"], str) and "<pad>" not in row["prediction"] for row in rows)
