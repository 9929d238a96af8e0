"""Tool calling: OpenAI tools/tool_calls and ShareGPT function calls in sft.py and eval.py (loading, rendering with a
template that supports tools and with the fallback, the completion mask, --export_data, bad input) and the
tool_call_match metric on known cases."""

import json
import re
from types import SimpleNamespace

import pytest
from conftest import load_script, run_script, write_json

sft = load_script("sft")
ev = load_script("eval")

STOCK_TOOLS = [
    {"type": "function", "function": {"name": "get_current_stock_price", "description": "Get the current stock price",
                                      "parameters": {"type": "object", "properties": {
                                          "symbol": {"type": "string", "description": "The stock symbol"}},
                                          "required": ["symbol"]}}},
    {"type": "function", "function": {"name": "get_last_nday_stock_price", "description": "Get stock price last n days",
                                      "parameters": {"type": "object", "properties": {
                                          "symbol": {"type": "string"}, "period": {"type": "string"}},
                                          "required": ["symbol", "period"]}}},
]
# The OpenAI chat fine-tuning format: an assistant turn with tool_calls and no content, arguments as a JSON string.
OPENAI_RECORD = {"messages": [
    {"role": "system", "content": "Ask when the ticker is unclear."},
    {"role": "user", "content": "How high did Oracle trade last month?"},
    {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_last_nday_stock_price", "arguments": "{\"symbol\": \"ORCL\", \"period\": \"1mo\"}"}}]}],
    "tools": STOCK_TOOLS}
# Two calls in one turn, their results as tool turns, then the answer.
OPENAI_WITH_RESULTS = {"messages": [
    {"role": "user", "content": "Prices of Apple and Oracle?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function",
         "function": {"name": "get_current_stock_price", "arguments": {"symbol": "AAPL"}}},
        {"id": "b", "type": "function",
         "function": {"name": "get_current_stock_price", "arguments": "{\"symbol\": \"ORCL\"}"}}]},
    {"role": "tool", "tool_call_id": "a", "content": "{\"price\": 231.5}"},
    {"role": "tool", "tool_call_id": "b", "content": "{\"price\": 177.2}"},
    {"role": "assistant", "content": "Apple is at 231.5 and Oracle at 177.2."}],
    "tools": STOCK_TOOLS}
# ShareGPT with function calls (Glaive style): tools as a JSON string of plain schemas.
GLAIVE_RECORD = {"conversations": [
    {"from": "human", "value": "Find me a recipe with chicken and rice."},
    {"from": "function_call",
     "value": "{\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"chicken\", \"rice\"]}}"},
    {"from": "observation", "value": "{\"recipes\": [\"Chicken fried rice\"]}"},
    {"from": "gpt", "value": "Try chicken fried rice."}],
    "tools": json.dumps([{"name": "search_recipes", "description": "Search recipes by ingredients", "parameters": {
        "type": "object", "properties": {"ingredients": {"type": "array", "items": {"type": "string"}}},
        "required": ["ingredients"]}}])}

# A chat template with tool support in the style of Qwen2.5 (tools in the system turn, calls in <tool_call> tags).
QWEN_STYLE_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{%- elif message.role == 'assistant' %}<|im_start|>assistant\n{% if message.content %}{{ message.content }}\n"
    "{% endif %}{% for call in message.tool_calls %}"
    "{% set call = call.function if call.function is defined else call %}"
    "<tool_call>\n{\"name\": \"{{ call.name }}\", \"arguments\": {{ call.arguments | tojson }}}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response>"
    "<|im_end|>\n{%- endif %}{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


TOKENIZERS = {}


def tokenizer_with(tokenizer, template):
    """The SmolLM2 tokenizer with `template` (the fallback added where it renders no tools), loaded once per template;
    tests only read it."""
    if template not in TOKENIZERS:
        TOKENIZERS[template] = load_tokenizer_with(tokenizer, template)
    return TOKENIZERS[template]


def load_tokenizer_with(tokenizer, template):
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    if template == "qwen-style":
        tokenizer.chat_template = QWEN_STYLE_TEMPLATE
    elif template in sft.PROMPT_TEMPLATES:
        tokenizer.chat_template = sft.PROMPT_TEMPLATES[template]
    if not sft.template_renders_tools(tokenizer):
        tokenizer.chat_template = sft.TOOL_FALLBACK_TEMPLATE + tokenizer.chat_template
    return tokenizer


def tokenize(tokenizer, records, tmp_path):
    """The records as sft.py loads (through a JSONL file and Arrow) and tokenizes them."""
    path = write_json(tmp_path / "data.jsonl", records, lines=True)
    dataset = sft.load_raw_dataset(str(path))["train"]
    data_format = sft.detect_format(dataset.column_names, "test")
    args = SimpleNamespace(completion_only_loss=None, max_length=2048)
    tokenized, _ = sft.tokenize_dataset(dataset, tokenizer, data_format, args, SimpleNamespace(too_long="truncate"))
    return dataset, tokenized


def trained_text(tokenizer, row):
    return tokenizer.decode([i for i, m in zip(row["input_ids"], row["completion_mask"]) if m])


@pytest.mark.parametrize("template,supports", [("chat", False), ("mistral", False), ("alpaca", False),
                                               ("qwen-style", True)])
def test_tool_support_is_probed_and_the_fallback_is_added_once(tokenizer, template, supports):
    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = QWEN_STYLE_TEMPLATE if template == "qwen-style" else sft.PROMPT_TEMPLATES.get(
        template, plain.chat_template)
    assert sft.template_renders_tools(plain) is supports
    wrapped = tokenizer_with(tokenizer, template)
    assert sft.template_renders_tools(wrapped)
    assert wrapped.chat_template == (plain.chat_template if supports else
                                     sft.TOOL_FALLBACK_TEMPLATE + plain.chat_template)
    # without tools the wrapped template renders exactly what the original does
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert wrapped.apply_chat_template(messages, tokenize=False) == plain.apply_chat_template(messages, tokenize=False)


CALL = '{"name": "get_last_nday_stock_price", "arguments": {"symbol": "ORCL", "period": "1mo"}}'


@pytest.mark.parametrize("template,trained", [
    ("chat", CALL + "<|im_end|>"),  # SmolLM2's template: the documented fallback
    ("alpaca", CALL + "<|im_end|>"),
    ("qwen-style", f"<tool_call>\n{CALL}\n</tool_call><|im_end|>"),
])
def test_openai_record_trains_exactly_the_calls_and_one_eos(tokenizer, tmp_path, template, trained):
    tok = tokenizer_with(tokenizer, template)
    _, tokenized = tokenize(tok, [OPENAI_RECORD], tmp_path)
    row = tokenized[0]
    assert trained_text(tok, row) == trained
    assert row["input_ids"][-1] == tok.eos_token_id and row["input_ids"][-2] != tok.eos_token_id
    text = tok.decode(row["input_ids"])
    assert "get_current_stock_price" in text and "Ask when the ticker is unclear." in text  # schemas and system kept


@pytest.mark.parametrize("template", ["chat", "qwen-style"])
def test_tool_results_are_context_and_every_call_and_answer_trains(tokenizer, tmp_path, template):
    tok = tokenizer_with(tokenizer, template)
    tokenized = [tokenize(tok, [record], tmp_path)[1][0] for record in (OPENAI_WITH_RESULTS, GLAIVE_RECORD)]
    stock, recipe = (trained_text(tok, row) for row in tokenized)
    assert '"symbol": "AAPL"' in stock and '"symbol": "ORCL"' in stock and "Apple is at 231.5" in stock
    assert "231.5}" not in stock and "Prices of" not in stock  # the tool results and the request are context
    assert '{"name": "search_recipes", "arguments": {"ingredients": ["chicken", "rice"]}}' in recipe
    assert "Try chicken fried rice." in recipe and "Chicken fried rice" not in recipe
    assert all(tok.decode(row["input_ids"]).count(tok.eos_token) == tok.decode(row["input_ids"]).count(
        "<|im_start|>") for row in tokenized)  # each turn closes once


def test_differently_shaped_schemas_survive_arrow(tmp_path):
    other = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
             "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                 "type": "object", "properties": {"x": {"type": "integer", "default": 3}}}}}]}
    path = write_json(tmp_path / "data.jsonl", [OPENAI_RECORD, other], lines=True)
    dataset = sft.load_raw_dataset(str(path))["train"]
    messages, tools = sft.chat_messages(dataset[0])
    assert tools == STOCK_TOOLS and "default" not in json.dumps(tools)  # no null fields merged in from the other row
    assert messages[-1]["tool_calls"][0]["function"]["arguments"] == {"symbol": "ORCL", "period": "1mo"}


@pytest.mark.parametrize("records", [[OPENAI_RECORD, OPENAI_WITH_RESULTS], [GLAIVE_RECORD]], ids=["openai", "sharegpt"])
def test_export_data_round_trip_trains_the_same_tokens(tokenizer, tmp_path, records):
    tok = tokenizer_with(tokenizer, "chat")
    source, tokenized = tokenize(tok, records, tmp_path)
    sft.export_splits(tmp_path / "exported", {"train": source}, sft.detect_format(source.column_names, "test"))
    exported = [json.loads(line) for line in (tmp_path / "exported" / "train.jsonl").read_text().splitlines()]
    call = next(m for m in exported[0]["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert isinstance(call["function"]["arguments"], str) and exported[0]["tools"][0]["type"] == "function"
    again = sft.load_raw_dataset(str(tmp_path / "exported" / "train.jsonl"))["train"]
    args = SimpleNamespace(completion_only_loss=None, max_length=2048)
    retokenized, _ = sft.tokenize_dataset(again, tok, "messages", args, SimpleNamespace(too_long="truncate"))
    assert retokenized["input_ids"] == tokenized["input_ids"]
    assert retokenized["completion_mask"] == tokenized["completion_mask"]


def with_call(**function):
    record = json.loads(json.dumps(OPENAI_RECORD))
    record["messages"][-1]["tool_calls"][0]["function"] = function
    return record


BAD_RECORDS = {
    "call without a function name": (with_call(arguments="{}"), "messages[2].tool_calls[0] has no function name"),
    "arguments not valid JSON": (with_call(name="get_current_stock_price", arguments="{symbol: ORCL"),
                                 "arguments are not valid JSON"),
    "arguments not an object": (with_call(name="get_current_stock_price", arguments="[1, 2]"),
                                "arguments must be a JSON object"),
    "call to a function not in tools": (with_call(name="buy_stock", arguments="{}"),
                                        "calls buy_stock, which is not in the record's tools"),
    "schema not an object": ({**OPENAI_RECORD, "tools": ["get_current_stock_price"]},
                             "tools[0] is a str; expected a function schema object"),
    "parameters not an object schema": ({**OPENAI_RECORD, "tools": [{"name": "f", "parameters": {"type": "array"}}]},
                                        "tools[0] (f): parameters is not a JSON schema object"),
    "tools not valid JSON": ({**GLAIVE_RECORD, "tools": "[{\"name\": "}, "tools is not valid JSON"),
    "ends on a tool result": ({**OPENAI_WITH_RESULTS, "messages": OPENAI_WITH_RESULTS["messages"][:-1]},
                              "the conversation ends on a tool result"),
    "function_call not JSON": ({**GLAIVE_RECORD, "conversations": [GLAIVE_RECORD["conversations"][0], {
        "from": "function_call", "value": "search_recipes(chicken)"}, GLAIVE_RECORD["conversations"][3]]},
        "conversations[1]: the function_call is not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_bad_tool_records_fail_with_one_line_naming_the_record(tokenizer, case, tmp_path):
    record, message = BAD_RECORDS[case]
    good = GLAIVE_RECORD if "conversations" in record else OPENAI_RECORD
    path = write_json(tmp_path / "data.jsonl", [good, record], lines=True)
    with pytest.raises(SystemExit) as error:
        sft.check_chat_records(sft.load_raw_dataset(str(path)), str(path))
    text = str(error.value)
    assert text.startswith(f"error: {path} [train] record 1: ") and message in text and "\n" not in text, text
    with pytest.raises(SystemExit) as error:  # eval.py, same rules
        ev.build_rows(ev.read_json_records(path), tokenizer_with(tokenizer, "chat"), str(path))
    assert str(error.value).startswith(f"error: {path}: record 1: ") and message in str(error.value)


def test_bad_tool_record_on_the_command_line_has_no_traceback(tiny_model_dir, tmp_path):
    path = write_json(tmp_path / "data.jsonl", [BAD_RECORDS["arguments not valid JSON"][0]], lines=True)
    result = run_script("sft.py", "--model_name_or_path", tiny_model_dir, "--dataset_name", path,
                        "--output_dir", tmp_path / "out", "--use_peft", "--max_steps", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {path} [train] record 0: messages[2]")
    assert not (tmp_path / "out").exists()


def test_eval_prompts_use_the_saved_template_and_reference_calls(tokenizer):
    tok = tokenizer_with(tokenizer, "chat")
    no_call = {"messages": [{"role": "user", "content": "Thanks!"},
                            {"role": "assistant", "content": "You're welcome."}],
               "tools": STOCK_TOOLS}
    rows = ev.build_rows([OPENAI_RECORD, no_call, GLAIVE_RECORD], tok, "test")
    assert rows[0]["prompt"].endswith("How high did Oracle trade last month?<|im_end|>\n<|im_start|>assistant\n")
    assert '"name": "get_last_nday_stock_price"' in rows[0]["prompt"]  # the schemas, as in training
    assert rows[0]["reference_calls"] == [{"name": "get_last_nday_stock_price",
                                           "arguments": {"symbol": "ORCL", "period": "1mo"}}]
    assert rows[0]["reference"] == CALL
    assert rows[1]["reference_calls"] == [] and rows[1]["reference"] == "You're welcome."
    assert "Result: {\"recipes\"" in rows[2]["prompt"] and rows[2]["reference"] == "Try chicken fried rice."


# --- tool_call_match -------------------------------------------------------------------------------------------------

SCHEMA = [{"type": "function", "function": {"name": "set_timer", "parameters": {"type": "object", "properties": {
              "minutes": {"type": "integer"}, "label": {"type": "string", "default": "timer"},
              "loud": {"type": "boolean", "default": False}}, "required": ["minutes"]}}},
          {"type": "function", "function": {"name": "convert", "parameters": {"type": "object", "properties": {
              "amount": {"type": "number"}, "code": {"type": "string"}}}}},
          {"type": "function", "function": {"name": "stop", "parameters": {"type": "object", "properties": {}}}}]
TIMER = [{"name": "set_timer", "arguments": {"minutes": 5}}]
CONVERT = [{"name": "convert", "arguments": {"amount": 5, "code": "5"}}]
TWO = [{"name": "set_timer", "arguments": {"minutes": 5}}, {"name": "stop", "arguments": {}}]


@pytest.mark.parametrize("prediction,reference,verdict", [
    ('{"name": "set_timer", "arguments": {"minutes": 5}}', TIMER, "correct"),
    ('{"name": "set_timer", "arguments": {"minutes": 5.0}}', TIMER, "correct"),  # integer schema: 5.0 is 5
    ('{"name": "set_timer", "arguments": {"minutes": "5"}}', TIMER, "correct"),  # a quoted number, numeric schema
    ('{"name": "set_timer", "arguments": {"minutes": 5.5}}', TIMER, "wrong_arguments"),
    ('{"name": "convert", "arguments": {"amount": "5.0", "code": "5"}}', CONVERT, "correct"),
    ('{"name": "convert", "arguments": {"amount": 5, "code": 5}}', CONVERT, "wrong_arguments"),  # string schema
    ('{"name": "set_timer", "arguments": {"minutes": 5, "label": "timer", "loud": false}}', TIMER, "correct"),
    ('{"name": "set_timer", "arguments": {"minutes": 5, "loud": "true"}}', TIMER, "wrong_arguments"),
    ('{"name": "set_timer", "arguments": {"minutes": 5, "extra": 1}}', TIMER, "wrong_arguments"),
    ('{"name": "set_timer", "arguments": {}}', TIMER, "wrong_arguments"),
    ('{"name": "set_timer", "arguments": "{\\"minutes\\": 5}"}', TIMER, "correct"),  # arguments as a JSON string
    ('{"function": {"name": "set_timer", "arguments": {"minutes": 5}}}', TIMER, "correct"),  # OpenAI's shape
    ('{"name": "set_timer", "parameters": {"minutes": 5}}', TIMER, "correct"),  # Llama 3.1's key
    ('<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 5}}\n</tool_call>', TIMER, "correct"),
    ('set_timer(minutes=5)', TIMER, "correct"),
    ('set_timer(5)', TIMER, "correct"),  # positional, named by the schema's order
    ('{"name": "stop", "arguments": {}}\n{"name": "set_timer", "arguments": {"minutes": 5}}', TWO, "correct"),
    ('[stop(), set_timer(minutes=5)]', TWO, "correct"),
    ('{"name": "set_timer", "arguments": {"minutes": 5}}', TWO, "missing_call"),
    ('{"name": "stop", "arguments": {}}', TIMER, "wrong_function"),
    ('Sure, here you go!', TIMER, "missing_call"),
    ('It is 5 minutes.', [], "correct"),  # no call expected, none made
    ('{"name": "stop", "arguments": {}}', [], "unexpected_call"),
    ('{"name": "set_timer", "arguments": {"minutes": 5', TIMER, "unparsable"),
    ('<tool_call>set timer please</tool_call>', TIMER, "unparsable"),
    ('__import__("os").system("echo hacked")', TIMER, "unparsable"),  # parsed with ast, never run
])
def test_tool_call_match_cases(prediction, reference, verdict):
    row = {"prediction": prediction, "reference": "", "reference_calls": reference, "tools": SCHEMA}
    ev.metric_tool_call_match([row])
    assert row["tool_call_verdict"] == verdict


@pytest.mark.parametrize("prediction,verdict", [
    ('{"name": "convert", "arguments": {"amount": 5, "code": "EUR"}}', "correct"),
    ('{"name": "convert", "arguments": {"amount": 5, "code": "eur"}}', "correct"),
    ('{"name": "convert", "arguments": {"amount": 5, "code": "euro"}}', "correct"),
    ('{"name": "convert", "arguments": {"amount": 5, "code": "USD"}}', "wrong_arguments"),
    ('{"name": "convert", "arguments": {"code": "EUR"}}', "correct"),  # "" among the allowed values: may be left out
])
def test_a_reference_may_list_allowed_values_per_argument(prediction, verdict):
    expected = [{"name": "convert", "arguments": {"code": ["EUR", "euro"], "amount": [5, ""]}}]
    row = {"prediction": prediction, "reference": "", "expected_calls": json.dumps(expected), "tools": SCHEMA}
    ev.metric_tool_call_match([row])
    assert row["tool_call_verdict"] == verdict


def test_tool_call_match_summary_counts_and_per_function_accuracy():
    rows = [{"prediction": p, "reference": "", "reference_calls": r, "tools": SCHEMA} for p, r in [
        ("set_timer(minutes=5)", TIMER), ("set_timer(minutes=6)", TIMER), ("stop()", TIMER), ("", TIMER),
        ("{broken", TIMER), ("Fine.", []), ("stop()", [])]]
    scores = ev.metric_tool_call_match(rows)
    assert scores["tool_call_accuracy"] == pytest.approx(2 / 7) and scores["tool_name_accuracy"] == pytest.approx(3 / 7)
    assert scores["tool_call_accuracy/set_timer"] == pytest.approx(1 / 5)
    assert scores["tool_call_accuracy/no_call"] == 0.5
    assert (scores["wrong_arguments_count"], scores["wrong_function_count"], scores["missing_call_count"],
            scores["unexpected_call_count"], scores["unparsable_count"]) == (1, 1, 1, 1, 1)
    assert scores["unparsable_share"] == pytest.approx(1 / 7)
    assert rows[0]["predicted_calls"][0]["name"] == "set_timer"
    # "" and "Fine." call nothing, one of them rightly; one of the two requests that need no call got one made up
    assert (scores["no_call_precision"], scores["no_call_recall"], scores["made_up_call_share"]) == (0.5, 0.5, 0.5)
    assert (scores["single_call_accuracy"], scores["single_call_rows"]) == (pytest.approx(1 / 5), 5)
    assert (scores["no_call_accuracy"], scores["no_call_rows"]) == (0.5, 2) and "multi_call_rows" not in scores


def test_tool_call_match_scores_multi_call_requests_apart():
    two = TIMER + [{"name": "stop", "arguments": {}}]
    rows = [{"prediction": p, "reference": "", "reference_calls": r, "tools": SCHEMA} for p, r in [
        ("set_timer(minutes=5)\nstop()", two), ("set_timer(minutes=5)", two), ("set_timer(minutes=5)", TIMER)]]
    scores = ev.metric_tool_call_match(rows)
    assert (scores["multi_call_accuracy"], scores["multi_call_rows"]) == (0.5, 2)
    assert scores["single_call_accuracy"] == 1.0  # every request needs a call and every answer made one:
    assert not {"no_call_precision", "no_call_recall", "made_up_call_share"} & set(scores)  # nothing to report


def test_tool_call_match_reads_python_references_without_rows_from_chat_records():
    # a prompt/completion row (the skills format) holds its reference call as text
    row = {"prediction": '{"name": "weather", "arguments": {"location": "Berlin"}}',
           "reference": 'weather(location="Berlin")'}
    assert ev.metric_tool_call_match([row])["tool_call_accuracy"] == 1.0


@pytest.mark.parametrize("expected", ['[{"arguments": {}}]', '{"name": "f"', '"f"'])
def test_malformed_expected_calls_fail_before_generation(tokenizer, expected):
    record = {**OPENAI_RECORD, "expected_calls": expected}
    with pytest.raises(SystemExit) as error:
        ev.build_rows([record], tokenizer_with(tokenizer, "chat"), "test.jsonl")
    assert str(error.value).startswith("error: test.jsonl: record 0: expected_calls must be a JSON list")


def test_generated_example_data_is_committed_and_splits_by_function(root):
    folder = root / "examples" / "tools"
    splits = {name: [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
              for name in ("train", "validation", "test", "test_unseen_functions")}
    called = {name: {c["function"]["name"] for r in records for c in r["messages"][-1].get("tool_calls", [])}
              for name, records in splits.items()}
    offered = {t["function"]["name"] for r in splits["train"] + splits["validation"] for t in r["tools"]}
    held_out = called["test_unseen_functions"] - called["test"]
    assert len(offered | held_out) >= 36 and len(held_out) == 6 and not held_out & offered
    requests = {name: {r["messages"][0]["content"] for r in records} for name, records in splits.items()}
    assert not requests["train"] & (requests["test"] | requests["test_unseen_functions"]) - {
        r["messages"][0]["content"] for r in splits["test"] if "tool_calls" not in r["messages"][-1]}
    for records in splits.values():  # every split has no-call requests and several calls in one turn
        assert any("tool_calls" not in r["messages"][-1] for r in records)
        assert any(len(r["messages"][-1].get("tool_calls", [])) > 1 for r in records)
        for record in records:
            sft.chat_messages(record)  # valid: names, arguments and schemas


@pytest.mark.parametrize("metrics, fails", [(["tool_call_match"], False), (["rouge", "tool_call_match"], True),
                                            (["perplexity"], True)])
def test_rows_scored_on_expected_calls_alone_take_only_tool_call_match(tokenizer, metrics, fails):
    # no reference answer: ROUGE, exact match or perplexity would be taken against the allowed values' JSON
    record = {"messages": [{"role": "user", "content": "A timer for 5 minutes"}], "tools": SCHEMA,
              "expected_calls": [{"name": "set_timer", "arguments": {"minutes": [5]}}]}
    if not fails:
        assert len(ev.build_rows([record], tokenizer, "bench.jsonl", metrics=metrics)) == 1
        return
    with pytest.raises(SystemExit, match="record 0 ends on the user's request .* use --metrics tool_call_match"):
        ev.build_rows([record], tokenizer, "bench.jsonl", metrics=metrics)
