"""Public tool-calling layouts (xLAM, Seal-Tools, ShareGPT/Glaive, OpenAI) converted by training_data.py --tools_data
into the OpenAI tools/tool_calls records sft.py and eval.py read; Python-style types as JSON Schema; bad rows; and
benchmark-style rows (expected_calls, no reference answer) scored by eval.py."""

import json
import logging

import pytest
from conftest import ROOT, load_script, run_script, run_sft, write_json

td = load_script("training_data")
ev = load_script("eval")

LAYOUTS = ROOT / "tests" / "fixtures" / "tool_layouts"
SEALTOOLS = LAYOUTS / "sealtools"


def convert(source, out, *extra):
    """source: one path, or a list of sources (paths, PATH=SPLIT)."""
    sources = source if isinstance(source, list) else [source]
    td.main(["--tools_data", *map(str, sources), "--output_dir", str(out), *map(str, extra)])
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines()] for path in out.glob("*.jsonl")}


def calls(record):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in record["messages"][-1].get("tool_calls", [])]


def schema(record, name):
    return next(t["function"]["parameters"] for t in record["tools"] if t["function"]["name"] == name)


@pytest.mark.parametrize("value,kind,fits", [
    (5, "integer", True), (5.0, "integer", True), ("5", "integer", True), (5.5, "integer", False),
    (True, "integer", False), ("ABC123", "integer", False), ([0, 0], "number", False), ("2.5", "number", True),
    (0.92, "string", False), ("true", "boolean", True), (["a"], "array", True), ("a", "array", False),
    ({"a": 1}, "object", True), (None, "integer", True), ([1], None, True),
])
def test_argument_values_are_checked_against_their_declared_type(value, kind, fits):
    assert td.value_fits(value, {"type": kind} if kind else {}) is fits


@pytest.mark.parametrize("text,expected", [
    ("int", ({"type": "integer"}, False)),
    ("str", ({"type": "string"}, False)),
    ("float", ({"type": "number"}, False)),
    ("bool", ({"type": "boolean"}, False)),
    ("str, optional", ({"type": "string"}, True)),
    ("int, default=5", ({"type": "integer"}, True)),
    ("List[str]", ({"type": "array", "items": {"type": "string"}}, False)),
    ("list", ({"type": "array"}, False)),
    ("Tuple[int, int]", ({"type": "array", "items": {"type": "integer"}}, False)),
    ("Tuple[int, str]", ({"type": "array"}, False)),
    ("List[List[float]]", ({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, False)),
    ("Dict[str, Any]", ({"type": "object"}, False)),
    ("Optional[float]", ({"type": "number"}, True)),
    ("Union[int, str]", ({"type": ["integer", "string"]}, False)),
    ("str | None", ({"type": "string"}, True)),
    ("Any", ({}, False)),
    ("string", ({"type": "string"}, False)),  # JSON Schema's own names
    ("Callable", None),
    ("List[Callable[[int], int]]", None),
    ("str, int", None),
])
def test_python_types_map_to_json_schema(text, expected):
    assert td.python_type_schema(text) == expected


def test_xlam_reader_single_multiple_and_no_call_rows(tmp_path):
    splits = convert(LAYOUTS / "xlam.json", tmp_path, "--tools_test_fraction", 0)
    rows = splits["train"]
    assert [r["id"] for r in rows] == ["0", "1", "2", "3"] and set(splits) == {"train"}
    assert rows[0]["messages"][0] == {"role": "user", "content": "What's the weather in Lyon?"}
    assert calls(rows[0]) == [("get_weather", {"city": "Lyon"})]
    assert calls(rows[1]) == [("stock_quotes", {"symbols": ["AAPL", "MSFT"]}), ("factorial", {"n": 5})]  # in order
    assert calls(rows[2]) == [("factorial", {"n": 3}), ("factorial", {"n": 4})]
    assert rows[3]["messages"][-1] == {"role": "assistant", "content": "None of the functions offered can do that."}
    weather = schema(rows[0], "get_weather")
    assert weather["properties"]["units"] == {"type": "string", "description": "metric or imperial",
                                              "default": "metric"}
    assert weather["required"] == ["city"]  # "optional" in the type or a default: not required
    stocks = schema(rows[1], "stock_quotes")
    assert stocks["properties"]["symbols"]["items"] == {"type": "string"} and stocks["required"] == ["symbols"]


def test_xlam_no_call_rows_can_be_dropped_and_a_file_holds_out_a_test_share(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="training_data"):
        splits = convert(LAYOUTS / "xlam.json", tmp_path, "--tools_no_call_answer", "", "--tools_test_fraction", 0.34)
    assert sorted(r["id"] for r in splits["train"] + splits["test"]) == ["0", "1", "2"] and len(splits["test"]) == 1
    assert "dropped 1 rows: calls nothing and --tools_no_call_answer is empty" in caplog.text


def test_sealtools_reader_keeps_single_and_ordered_calls_and_counts_nested_drops(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="training_data"):
        splits = convert(SEALTOOLS, tmp_path)
    assert set(splits) == {"train", "test_out_domain"}  # tool.jsonl holds the schemas, not a split
    train = {r["id"]: r for r in splits["train"]}
    assert "train-difficult-5" not in train and len(train) == 6
    assert f"dropped 1 rows: a call uses an earlier call's response (nested) (e.g. {SEALTOOLS / 'train.jsonl'}:6)" \
        in caplog.text
    assert calls(train["train-difficult-4"]) == [("setThermostat", {"temperature": 19, "room": "kitchen"}),
                                                 ("getWeather", {"location": "Rome"})]
    assert [t["function"]["name"] for t in train["train-difficult-4"]["tools"]] == ["setThermostat", "getWeather"]
    thermostat = schema(train["train-easy-0"], "setThermostat")
    assert thermostat == {"type": "object", "properties": {
        "temperature": {"type": "integer", "description": "Degrees Celsius"},
        "room": {"type": "string", "description": "The room (e.g., kitchen)"}}, "required": ["temperature"]}
    playlist = schema(train["train-easy-6"], "playPlaylist")["properties"]
    assert playlist["names"]["items"] == {"type": "string"} and playlist["shuffle"]["type"] == "boolean"
    assert calls(splits["test_out_domain"][1]) == [("bookTable", {"restaurant": "Mira", "people": 2}),
                                                   ("sendMessage", {"recipient": "Carl", "text": "It's booked"})]


def test_distractors_and_no_call_copies_come_from_the_split_and_are_seeded(tmp_path):
    splits = convert(SEALTOOLS, tmp_path / "a", "--tools_distractors", 2, "--tools_no_call_share", 0.5)
    assert splits == convert(SEALTOOLS, tmp_path / "b", "--tools_distractors", 2, "--tools_no_call_share", 0.5)
    train = {r["id"]: r for r in splits["train"]}
    originals = [r for r in train.values() if not r["id"].endswith("-no-call")]
    copies = [r for r in train.values() if r["id"].endswith("-no-call")]
    assert len(originals) == 6 and len(copies) == 3  # half of the 6 single-request rows
    train_functions = {t["function"]["name"] for r in originals for t in r["tools"]}
    assert "bookTable" not in train_functions  # a test function never reaches training as a distractor
    for row in originals:
        called = {name for name, _ in calls(row)}
        assert called <= {t["function"]["name"] for t in row["tools"]} and len(row["tools"]) == len(called) + 2
    for copy in copies:
        original = train[copy["id"].removesuffix("-no-call")]
        assert copy["messages"][:-1] == original["messages"][:-1] and "tool_calls" not in copy["messages"][-1]
        assert len(copy["tools"]) == 2 and not {t["function"]["name"] for t in copy["tools"]} & {
            name for name, _ in calls(original)}
    with pytest.raises(SystemExit) as stop:
        convert(SEALTOOLS, tmp_path / "c", "--tools_no_call_share", 0.5)
    assert str(stop.value.code).startswith("error: --tools_no_call_share needs --tools_distractors N >= 1")

def test_sharegpt_and_openai_rows_pass_through_in_openai_form(tmp_path):
    tools = [{"name": "search_recipes", "description": "Search recipes", "parameters": {
        "type": "object", "properties": {"ingredients": {"type": "array", "items": {"type": "string"}}},
        "required": ["ingredients"]}}]
    glaive = {"conversations": [
        {"from": "human", "value": "Find me a recipe with rice."},
        {"from": "function_call",
         "value": json.dumps({"name": "search_recipes", "arguments": {"ingredients": ["rice"]}})},
        {"from": "observation", "value": "{\"recipes\": [\"Fried rice\"]}"},
        {"from": "gpt", "value": "Try fried rice."}], "tools": json.dumps(tools)}
    openai = {"messages": [{"role": "user", "content": "Recipes with eggs?"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "search_recipes", "arguments": "{\"ingredients\": [\"eggs\"]}"}}]}],
        "tools": [{"type": "function", "function": tools[0]}]}
    write_json(tmp_path / "in" / "glaive.json", [glaive])
    write_json(tmp_path / "in" / "openai.jsonl", [openai], lines=True)
    splits = convert(tmp_path / "in", tmp_path / "out")
    row = splits["glaive"][0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert calls({"messages": row["messages"][:2]}) == [("search_recipes", {"ingredients": ["rice"]})]
    assert row["tools"][0]["type"] == "function" and calls(splits["openai"][0]) == [
        ("search_recipes", {"ingredients": ["eggs"]})]


def test_a_hub_dataset_with_a_train_split_alone_holds_out_test(tmp_path, monkeypatch):
    import datasets

    rows = json.loads((LAYOUTS / "xlam.json").read_text())
    monkeypatch.setattr(datasets, "load_dataset", lambda name: datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows)}) if name == "someone/xlam-like" else None)
    splits = convert("someone/xlam-like", tmp_path, "--tools_test_fraction", 0.25)
    assert len(splits["train"]) == 3 and len(splits["test"]) == 1
    with pytest.raises(SystemExit) as stop:
        convert("no/such/place.jsonl", tmp_path)
    assert str(stop.value.code).startswith("error: --tools_data no/such/place.jsonl: no such file or folder")

def test_a_rerun_removes_the_split_files_it_no_longer_writes(tmp_path, caplog):
    rows = (LAYOUTS / "xlam.json").read_text()
    (tmp_path / "in").mkdir()
    for split in ("train", "test", "test_unseen_functions"):
        (tmp_path / "in" / f"{split}.json").write_text(rows)
    assert set(convert(tmp_path / "in", tmp_path / "out")) == {"train", "test", "test_unseen_functions"}
    (tmp_path / "out" / "teacher_notes.jsonl").write_text("")  # not a split name: never ours to remove
    with caplog.at_level(logging.INFO, logger="training_data"):
        splits = convert(tmp_path / "in" / "train.json", tmp_path / "out", "--tools_test_fraction", 0)
    assert set(splits) == {"train", "teacher_notes"}  # eval would have read the old test sets
    assert "removed test.jsonl, test_unseen_functions.jsonl, split files of an earlier run" in caplog.text


def test_rows_that_teach_a_wrong_call_are_dropped_and_counted(tmp_path, caplog):
    fact = {"name": "factorial", "parameters": {"n": {"type": "int", "default": ""}}}
    callback = {"name": "apply", "parameters": {"f": {"type": "Callable", "default": ""}}}
    rows = [{"query": "5!", "tools": json.dumps([fact]), "answers": json.dumps([{"name": "factorial",
                                                                                 "arguments": {"n": 5, "m": 1}}])},
            {"query": "5!", "tools": json.dumps([fact]),
             "answers": json.dumps([{"name": "factorial", "arguments": {}}])},
            {"query": "apply", "tools": json.dumps([callback]), "answers": "[]"},
            {"query": "5!", "tools": json.dumps([fact]), "answers": json.dumps([{"name": "factorial",
                                                                                 "arguments": {"n": [5]}}])},
            {"query": "7!", "tools": json.dumps([fact]), "answers": json.dumps([{"name": "factorial",
                                                                                 "arguments": {"n": "7"}}])},
            {"query": "6!", "tools": json.dumps([fact]), "answers": json.dumps([{"name": "factorial",
                                                                                 "arguments": {"n": 6}}])}]
    path = write_json(tmp_path / "xlam.jsonl", rows, lines=True)
    with caplog.at_level(logging.INFO, logger="training_data"):
        splits = convert(path, tmp_path / "out", "--tools_test_fraction", 0)
    assert [r["id"] for r in splits["train"]] == ["xlam-5", "xlam-6"]  # "7" for an int: text, but a number
    for reason in ("a call passes an argument its function does not declare", "a call leaves out a required argument",
                   "a parameter type JSON Schema has no word for ('Callable')",
                   "an argument's value cannot be of its declared type"):
        assert f"dropped 1 rows: {reason}" in caplog.text


def xlam_row(**changes):
    fact = {"name": "factorial", "description": "n!", "parameters": {"n": {"type": "int", "default": ""}}}
    return {"query": "What is 5!?", "tools": json.dumps([fact]),
            "answers": json.dumps([{"name": "factorial", "arguments": {"n": 5}}]), **changes}


def sealtools_row(api="setThermostat", parameters='{"temperature": 20}'):
    return json.dumps({"id": "x", "query": "Warmer please.", "calling": [{"api": api, "parameters": parameters}]})


@pytest.mark.parametrize("lines,schemas,message", [
    ([sealtools_row(api="openWindow")], True,
     "{data}:1: calling[0] calls 'openWindow', which has no schema in {schemas}; add it there or fix the name"),
    ([sealtools_row()], False, "{data}: Seal-Tools rows need their tool.jsonl: put it beside the file or give "
                               "--tools_schemas"),
    ([sealtools_row(parameters='{"temperature": 2')], True,
     "{data}:1: calling[0] (setThermostat): arguments are not valid JSON"),
    ([json.dumps(xlam_row(answers='[{"name": "gamma", "arguments": {"x": 1}}]'))], False,
     "{data}:1: answers[0] calls gamma, which is not in the record's tools (factorial); add its schema"),
    ([json.dumps(xlam_row(answers='[{"name": "factorial", "arguments": "{n: 5}"}]'))], False,
     "{data}:1: answers[0] (factorial): arguments are not valid JSON"),
    ([json.dumps(xlam_row(answers='[{"name": "factorial"'))], False, "{data}:1: answers is not valid JSON"),
    ([json.dumps(xlam_row(tools="[]"))], False, "{data}:1: the row calls functions but gives no tool schema"),
    ([json.dumps(xlam_row()), "{broken"], False, "{data}:2: invalid JSON line"),
    ([json.dumps({"question": "hi"})], False, "{data}: cannot tell the layout from the fields ['question']"),
])
def test_bad_rows_fail_with_one_line_naming_file_and_row(tmp_path, lines, schemas, message):
    data = tmp_path / "in" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("\n".join(lines) + "\n")
    tool_file = tmp_path / "in" / "tool.jsonl"
    if schemas:
        tool_file.write_text((SEALTOOLS / "tool.jsonl").read_text())
    with pytest.raises(SystemExit) as stop:
        td.main(["--tools_data", str(data), "--output_dir", str(tmp_path / "out")])
    error = str(stop.value.code)
    assert "\n" not in error and error.startswith("error: " + message.format(data=data, schemas=tool_file)), error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("second,message", [
    (xlam_row(tools="[]"),
     "record 2: the row calls functions but gives no tool schema; add the functions' schemas to its tools"),
    (["not", "an object"], "record 2: a JSON list, not an object with named fields"),
])
def test_a_json_list_names_its_bad_record_by_number_not_by_line(tmp_path, second, message):
    data = tmp_path / "train.json"
    data.write_text(json.dumps([xlam_row(), second], indent=1))  # record 2 starts on line 8: a line would mislead
    with pytest.raises(SystemExit) as stop:
        td.main(["--tools_data", str(data), "--output_dir", str(tmp_path / "out")])
    assert str(stop.value.code) == f"error: {data} {message}"


def test_a_tool_file_line_without_a_name_fails_naming_it(tmp_path):
    (tmp_path / "tool.jsonl").write_text(json.dumps({"api_description": "no name", "parameters": {}}) + "\n")
    (tmp_path / "train.jsonl").write_text(sealtools_row() + "\n")
    with pytest.raises(SystemExit) as stop:
        td.main(["--tools_data", str(tmp_path), "--output_dir", str(tmp_path / "out")])
    assert str(stop.value.code) == f"error: {tmp_path / 'tool.jsonl'}:1: no api_name; every line of the tool file " \
                                   "names its function"


# --- benchmark-style rows: expected_calls and no reference answer (eval.py) -----------------------------------------

BENCH_TOOLS = [{"type": "function", "function": {"name": "convert", "parameters": {"type": "object", "properties": {
    "amount": {"type": "number"}, "code": {"type": "string"}}}}}]
BENCH_ROW = {"messages": [{"role": "user", "content": "5 dollars in euro?"}], "tools": BENCH_TOOLS,
             "expected_calls": [{"name": "convert", "arguments": {"amount": [5], "code": ["EUR", "euro"]}}]}


def test_benchmark_rows_are_scored_without_a_reference_answer(tokenizer):
    rows = ev.build_rows([BENCH_ROW], tokenizer, "bench.jsonl")
    assert rows[0]["prompt"].endswith("5 dollars in euro?<|im_end|>\n<|im_start|>assistant\n")
    assert json.loads(rows[0]["reference"]) == BENCH_ROW["expected_calls"][0]
    rows[0]["prediction"] = '{"name": "convert", "arguments": {"amount": 5, "code": "euro"}}'
    assert ev.metric_tool_call_match(rows)["tool_call_accuracy"] == 1.0


def test_a_row_ending_on_the_user_without_expected_calls_still_fails(tokenizer):
    record = {key: value for key, value in BENCH_ROW.items() if key != "expected_calls"}
    with pytest.raises(SystemExit) as stop:
        ev.build_rows([record], tokenizer, "bench.jsonl")
    assert str(stop.value.code).startswith("error: bench.jsonl: record 0 does not end with an assistant answer")


# --- end to end -------------------------------------------------------------------------------------------------------


def test_sealtools_layout_trains_and_scores_with_tool_call_match(tiny_model_dir, tmp_path):
    data, out = tmp_path / "data", tmp_path / "model"
    convert(SEALTOOLS, data)
    run_sft("--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", out, "--max_steps", "1",
            "--per_device_train_batch_size", "2", "--eval_strategy", "no", "--save_strategy", "no")
    assert "tools is defined" in (out / "chat_template.jinja").read_text()  # the tool fallback, saved with the model
    write_json(data / "bench.jsonl", [BENCH_ROW], lines=True)  # no reference answer: scored on expected_calls
    for split, count in (("test_out_domain", 2), ("bench", 1)):
        result = run_script("eval.py", "--model_name_or_path", out, "--dataset", data, "--split", split,
                            "--metrics", "tool_call_match", "--max_new_tokens", "8", "--output_dir", out / split)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "tool_call_accuracy" in json.loads((out / split / "metrics.json").read_text())
        rows = [json.loads(line) for line in (out / split / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == count and all("tool_call_verdict" in row for row in rows)


def test_several_sources_join_by_split_with_renames_and_whole_source_splits(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="training_data"):
        splits = convert([SEALTOOLS, f"{LAYOUTS / 'xlam.json'}=test_xlam"], tmp_path, "--tools_splits",
                         "test_out_domain=test_unseen_functions")
    assert set(splits) == {"train", "test_unseen_functions", "test_xlam"}
    assert len(splits["train"]) == 6 and len(splits["test_xlam"]) == 4  # a whole source: no held-out share
    # test-difficult-1 also calls sendMessage, which training offers: not a function never trained
    assert [r["id"] for r in splits["test_unseen_functions"]] == ["test-easy-0"]
    assert "dropped 1 rows: test_unseen_functions: calls a function a training split offers (e.g. " \
           "test-difficult-1)" in caplog.text
    # two splits renamed to one are joined; a plain file among several sources still holds out its test share
    joined = convert([SEALTOOLS, LAYOUTS / "xlam.json"], tmp_path / "joined", "--tools_splits",
                     "train=train,test_out_domain=train", "--tools_test_fraction", 0.25)
    assert len(joined["train"]) == 6 + 2 + 3 and len(joined["test"]) == 1


@pytest.mark.parametrize("splits", ["dev", "dev=", "dev=a b", "=train"])
def test_a_bad_split_rename_fails_in_one_line(tmp_path, splits):
    with pytest.raises(SystemExit) as stop:
        convert(SEALTOOLS, tmp_path, "--tools_splits", splits)
    assert str(stop.value.code).startswith(f"error: --tools_splits {splits}: ") and "OLD=NEW" in stop.value.code


@pytest.mark.parametrize("source,expected", [
    ("data/x.jsonl=test_openai", ("data/x.jsonl", "test_openai")),
    ("data/x.jsonl", ("data/x.jsonl", None)),
    ("Salesforce/xlam-function-calling-60k", ("Salesforce/xlam-function-calling-60k", None)),
    ("data/a=b/x.jsonl", ("data/a=b/x.jsonl", None)),  # an '=' inside the path names no split
    ("=train", ("=train", None)),
])
def test_a_source_names_its_split_after_its_last_equals_sign(source, expected):
    assert td.tools_source_split(source) == expected
