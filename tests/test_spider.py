"""Spider at full size (issue 29): the Spider-layout reader and its errors, the held-out databases, batches drawn from
one prompt-prefix group (sft.py --group_by_prefix) and packing with several shared prefixes per batch."""

import json
import re
import sqlite3
from collections import Counter

import pytest
import torch
from conftest import load_script, run_sft

td = load_script("training_data")
sft = load_script("sft")


# ------------------------------------------------------------------------------------------ the Spider-layout reader

def spider_folder(folder, databases=("shop", "zoo", "farm", "bank", "school"), per_database=4, dev=None,
                  without_database=()):
    """A tiny Spider-layout folder: tables.json, train_spider.json and database/<db_id>/<db_id>.sqlite (written by
    sqlite3 here), optionally dev.json on other databases."""
    tables, questions = [], []
    for db_id in list(databases) + list(dev or []):
        tables.append({"db_id": db_id, "table_names_original": ["item", "owner"],
                       "column_names_original": [[-1, "*"], [0, "item_id"], [0, "name"], [0, "price"], [1, "owner_id"],
                                                 [1, "full name"]],
                       "column_types": ["text", "number", "text", "number", "number", "text"]})
        if db_id not in without_database:
            path = folder / "database" / db_id / f"{db_id}.sqlite"
            path.parent.mkdir(parents=True)
            conn = sqlite3.connect(path)
            conn.executescript("CREATE TABLE item (item_id INTEGER, name TEXT, price INTEGER); "
                               "CREATE TABLE owner (owner_id INTEGER, \"full name\" TEXT); "
                               f"INSERT INTO item VALUES (1, '{db_id} lamp', 5), (2, '{db_id} desk', 9), "
                               f"(3, '{db_id} lamp', 7); INSERT INTO owner VALUES (1, 'Ann')")
            conn.commit()
            conn.close()
    for db_id in databases:
        questions += [{"db_id": db_id, "question": f"How many items cost more than {i} in {db_id}?",
                       "query": f"SELECT count(*)  FROM  item WHERE price  >  {i}"} for i in range(per_database)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tables.json").write_text(json.dumps(tables))
    (folder / "train_spider.json").write_text(json.dumps(questions, indent=1))
    if dev:
        (folder / "dev.json").write_text(json.dumps([{"db_id": db, "question": "How many items?",
                                                      "query": "SELECT count(*) FROM item"} for db in dev]))
    return folder


def prepare(folder, out, *extra):
    td.main(["--sql_data", str(folder), "--sql_group_by", "db_id", "--sql_held_out_split", "validation",
             "--output_dir", str(out), *map(str, extra)])
    return {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))}


def test_spider_folder_becomes_train_and_held_out_databases(tmp_path):
    splits = prepare(spider_folder(tmp_path / "spider", dev=["museum"]), tmp_path / "out", "--sql_test_fraction", 0.2)
    assert set(splits) == {"train", "validation", "test"}
    assert len(splits["train"]) + len(splits["validation"]) == 20 and len(splits["validation"]) == 4
    assert [r["db_id"] for r in splits["test"]] == ["museum"]  # dev.json: Spider's own test databases
    record = splits["train"][0]
    # the schema from tables.json, before the question: one token prefix per database
    assert record["context"] == ('CREATE TABLE item (item_id INTEGER, name VARCHAR, price INTEGER); '
                                 'CREATE TABLE owner (owner_id INTEGER, "full name" VARCHAR)')
    assert record["prompt"].index(record["context"]) < record["prompt"].index(record["question"])
    assert record["completion"] == f"SELECT count(*) FROM item WHERE price > {record['question'].split()[6]}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_data_step_never_trains_on_a_validation_database(tmp_path, seed):
    databases = [f"db{i}" for i in range(12)]
    splits = prepare(spider_folder(tmp_path / "spider", databases, per_database=3), tmp_path / "out",
                     "--sql_seed", seed)
    train_dbs, held_dbs = ({r["db_id"] for r in splits[name]} for name in ("train", "validation"))
    assert held_dbs and not train_dbs & held_dbs and train_dbs | held_dbs == set(databases)
    questions = Counter(r["question"] for name in ("train", "validation") for r in splits[name])
    assert len(questions) == 36 and set(questions.values()) == {1}


def test_a_rerun_without_the_validation_split_removes_its_stale_file(tmp_path, caplog):
    folder, out = spider_folder(tmp_path / "spider", dev=["museum"]), tmp_path / "out"
    assert set(prepare(folder, out)) == {"train", "validation", "test"}
    (out / "notes.json").write_text("{}")  # not a split name: never ours to remove
    with caplog.at_level("INFO", logger="training_data"):
        td.main(["--sql_data", str(folder), "--output_dir", str(out)])  # test from dev.json, nothing held out
    assert sorted(path.name for path in out.iterdir()) == ["notes.json", "test.json", "train.json"]
    assert f"{out}: removed validation.json, split files of an earlier run that this run did not write" in caplog.text


def test_a_test_set_sharing_databases_with_train_is_reported(tmp_path, caplog):
    folder = spider_folder(tmp_path / "spider")
    (folder / "dev.json").write_text(json.dumps([{"db_id": db, "question": "How many items?",
                                                  "query": "SELECT count(*) FROM item"} for db in ("shop", "zoo")]))
    with caplog.at_level("WARNING", logger="training_data"):
        splits = prepare(folder, tmp_path / "out", "--sql_test_fraction", 0.2)
    trained = {r["db_id"] for r in splits["train"]}
    shared = sorted(trained & {"shop", "zoo"})
    assert shared and not trained & {r["db_id"] for r in splits["validation"]}  # the held-out split never shares
    assert (f"test shares {len(shared)} db_id values with train (e.g. {shared[0]}): it does not measure unseen "
            "groups") in caplog.text
    assert "validation shares" not in caplog.text


def test_sample_values_link_the_schema_to_the_data(tmp_path):
    splits = prepare(spider_folder(tmp_path / "spider"), tmp_path / "out", "--sql_sample_values", 1)
    record = splits["train"][0]
    db_id = record["db_id"]
    # the most frequent value of each text column, before the question (still in the database's shared prefix)
    assert f"\nValues: item.name: '{db_id} lamp'; owner.full name: 'Ann'\nQuestion: " in record["prompt"]


def test_missing_databases_can_be_left_out(tmp_path, caplog):
    folder = spider_folder(tmp_path / "spider", without_database=["zoo"])
    with caplog.at_level("WARNING"):
        splits = prepare(folder, tmp_path / "out", "--sql_missing_databases", "drop")
    assert "zoo" not in {r["db_id"] for records in splits.values() for r in records}
    assert "left out 4 questions of 1 databases" in caplog.text


def break_tables(folder):
    (folder / "tables.json").unlink()


def break_schema(folder):
    tables = json.loads((folder / "tables.json").read_text())
    (folder / "tables.json").write_text(json.dumps([t for t in tables if t["db_id"] != "farm"]))


def break_json(folder):
    text = (folder / "train_spider.json").read_text()
    (folder / "train_spider.json").write_text(text.replace('"query":', '"query"', 1))


@pytest.mark.parametrize("damage, message", [
    (break_tables, r"--sql_data \S+: no tables.json \(Spider's layout"),
    (break_schema, r"train_spider.json record 8: db_id 'farm' has no schema in tables.json"),
    (lambda folder: None, r"record 4: db_id 'zoo' has no database \S+/zoo/zoo.sqlite \(add it, or "
                          r"--sql_missing_databases drop"),
    (break_json, r"train_spider.json:5: invalid JSON"),
])
def test_bad_spider_folders_fail_with_one_line(tmp_path, damage, message):
    folder = spider_folder(tmp_path / "spider", without_database=["zoo"])
    damage(folder)
    with pytest.raises(SystemExit) as caught:
        prepare(folder, tmp_path / "out")
    text = str(caught.value)
    assert text.startswith("error: ") and "\n" not in text
    assert re.search(message, text), text
    assert not (tmp_path / "out").exists()


def test_a_broken_json_line_names_its_line(tmp_path):
    path = tmp_path / "spider.jsonl"
    path.write_text('{"question": "q", "context": "CREATE TABLE t (a INTEGER)", "answer": "SELECT a FROM t", '
                    '"db_id": "x"}\n{"question": "q2", "context": \n')
    with pytest.raises(SystemExit, match=rf"error: {path}:2: invalid JSON line"):
        td.main(["--sql_data", str(path), "--sql_group_by", "db_id", "--output_dir", str(tmp_path / "out")])


def test_spider_example_folder_is_what_its_script_writes(root, tmp_path):
    """examples/spider (make spider-data's default) reads as a Spider folder whose queries run on its databases."""
    splits = prepare(root / "examples" / "spider", tmp_path / "out")
    assert len({r["db_id"] for r in splits["validation"]}) == 1 and len({r["db_id"] for r in splits["train"]}) == 2
    for record in splits["train"] + splits["validation"]:
        db_id = record["db_id"]
        conn = sqlite3.connect(root / "examples" / "spider" / "database" / db_id / f"{db_id}.sqlite")
        assert conn.execute(record["completion"]).fetchall()
        conn.close()


# ------------------------------------------------------------------------------------- batches by prompt prefix

@pytest.mark.parametrize("sizes, batch_size", [([50, 50, 7, 33], 16), ([3, 3, 3], 4), ([16, 16], 16), ([1] * 9, 2)])
def test_prefix_group_order_gives_every_row_once_in_one_group_batches(sizes, batch_size):
    groups, start = [], 0
    for size in sizes:
        groups.append(list(range(start, start + size)))
        start += size
    group_of = {row: g for g, group in enumerate(groups) for row in group}
    sampler = sft.PrefixGroupSampler(groups, batch_size, seed=0)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(start)) and len(sampler) == start  # every row exactly once an epoch
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        one_group = sum(len({group_of[row] for row in batch}) == 1 and len(batch) == batch_size for batch in batches)
        assert one_group == sum(size // batch_size for size in sizes)  # every whole batch a group can fill
        orders.append(order)
    assert len(sizes) == 2 and sizes[0] == batch_size or orders[0] != orders[1]  # a new order every epoch
    assert list(sft.PrefixGroupSampler(groups, batch_size, seed=0)) == orders[0]  # the seed decides


def test_prompt_prefix_groups_follow_the_shared_schema():
    schema_a, schema_b, instruction = list(range(100, 140)), list(range(200, 230)), [1, 2, 3]
    prompts = [instruction + schema_a + [7, 8], instruction + schema_b + [9], instruction + schema_a + [5],
               instruction + schema_b + [4, 4], [1, 9, 9, 9]]
    rows = [p + [50, 51] for p in prompts]
    labels = [[-100] * len(p) + [50, 51] for p in prompts]
    groups = sorted(sorted(g) for g in sft.prompt_prefix_groups(rows, labels))
    assert groups == [[0, 2], [1, 3], [4]]


def mixed_prefix_loss_and_grads(model_dir, share):
    """One fp32 forward/backward of a right-padded batch mixing rows of two prompt prefixes (two databases' schemas)
    of different lengths, and a row that shares nothing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False,
                                             task_type="CAUSAL_LM"))
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", "entropy", "is_top1"))
    assert sft.add_cpu_lm_head(model.get_base_model(), share_prompt_prefix=share)
    ids = torch.randint(0, 1000, (5, 30))
    ids[[0, 2, 3], :20] = ids[0, :20]  # schema A: 20 tokens
    ids[[1, 4], :12] = ids[1, :12]  # schema B: 12 tokens
    attention_mask = torch.ones_like(ids)
    attention_mask[2, 26:] = attention_mask[4, 20:] = 0
    labels = ids.masked_fill(attention_mask == 0, -100)
    labels[:, :24] = -100
    labels[4, :16] = -100
    labels[4, 16:] = ids[4, 16:].masked_fill(attention_mask[4, 16:] == 0, -100)
    out = model(input_ids=ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


def test_packing_shares_several_prefixes_with_the_same_loss_and_gradients(tiny_model_dir, monkeypatch):
    packed, pack = [], sft.pack_shared_prefix
    monkeypatch.setattr(sft, "pack_shared_prefix", lambda *args: packed.append(pack(*args)) or packed[-1])
    plain, plain_grads = mixed_prefix_loss_and_grads(tiny_model_dir, False)
    shared, shared_grads = mixed_prefix_loss_and_grads(tiny_model_dir, True)
    assert len(packed) == 1 and packed[0] is not None
    # rows 0 and 1 whole, rows 2 and 3 after schema A (row 0's), row 4 after schema B (row 1's)
    assert packed[0][0].shape == (1, 30 + 30 + (26 - 20) + (30 - 20) + (20 - 12))
    torch.testing.assert_close(shared.loss, plain.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shared.log_probs[shared.label_mask], plain.log_probs[plain.label_mask])
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_pack_shared_prefix_reuses_the_row_that_shares_most():
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 1, 2, 3, 4], [5, 6, 7, 3, 3], [5, 1, 2, 7, 7]])
    labels = torch.full_like(ids, -100)
    labels[:, 4] = ids[:, 4]
    ids_, positions, allowed, targets = sft.pack_shared_prefix(ids, torch.ones_like(ids), labels, 0.0)
    assert ids_.tolist() == [[5, 6, 7, 8, 9, 1, 2, 3, 4, 3, 3, 7, 7]]
    assert positions.tolist() == [[0, 1, 2, 3, 4, 1, 2, 3, 4, 3, 4, 3, 4]]
    # row 3's token at position 3 sees token 5 of row 0 and tokens 1, 2 of row 1: its own prompt, nothing else
    assert allowed[0, 0, 11].nonzero().flatten().tolist() == [0, 5, 6, 11]
    assert targets.tolist() == [[-100, -100, -100, 9, -100, -100, -100, 4, -100, 3, -100, 7, -100]]


def test_sft_group_by_prefix_packs_every_training_batch(tiny_model_dir, tmp_path, caplog):
    """Rows of three databases, shuffled: length-grouped batches would mix them; --group_by_prefix fills each batch
    from one, and packing applies to every training batch."""
    rows = []
    for db in range(3):
        schema = "; ".join(f"CREATE TABLE table{db}_{t} (column{t}a INTEGER, column{t}b VARCHAR)" for t in range(6))
        rows += [{"prompt": f"Tables: {schema}\nQuestion: question {i} on database {db}?\nSQL:",
                  "completion": f"SELECT column0a FROM table{db}_0 WHERE column0b = '{i}'"} for i in range(8)]
    rows = [rows[i] for i in torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    caplog.set_level("INFO", logger="sft")
    run_sft("--model_name_or_path", tiny_model_dir, "--dataset_name", data, "--output_dir", tmp_path / "out",
            "--use_peft", "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--eval_strategy", "no",
            "--group_by_prefix", "True", "--report_to", "none", "--save_strategy", "no")
    assert "24 rows in 3 groups, 100% of them in single-group batches" in caplog.text
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["train_prefix_packed_share"] == 1.0


# ------------------------------------------------------------------------------------- eval: generation by prefix

@pytest.mark.parametrize("sizes, batch_size", [([40, 30, 5, 3, 20], 64), ([100, 17], 32), ([2, 3, 4], 64),
                                               ([2, 3, 4], 1), ([5, 3], 2)])  # batches below a small group's size
def test_eval_batches_keep_a_prefix_group_together(sizes, batch_size):
    ev = load_script("eval")
    encoded, group_of = [], []
    for group, size in enumerate(sizes):
        schema = [1000 + 10 * group + k for k in range(30)]
        encoded += [[1, 2] + schema + [5] * (i % 4) + [i] for i in range(size)]
        group_of += [group] * size
    batches = ev.prefix_batches(encoded, batch_size)
    assert sorted(i for batch in batches for i in batch) == list(range(len(encoded)))
    assert all(0 < len(batch) <= batch_size for batch in batches)
    for batch in batches:
        groups = {group_of[i] for i in batch}
        # a group big enough for a batch of its own gets one (or several, of equal size)
        assert len(groups) == 1 or all(sizes[g] < ev.MIN_DECODE_ROWS for g in groups)


def test_generation_by_prefix_batches_gives_generates_tokens(tiny_model_dir, tokenizer):
    """generate's batches follow the shared prefixes: the answers are model.generate's for each prompt alone."""
    from transformers import AutoModelForCausalLM

    ev = load_script("eval")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = [f"Tables: CREATE TABLE {name} (a INTEGER, b VARCHAR, c INTEGER)\nQuestion: row {i} of {name}?\nSQL:"
               for name in ("alpha", "beta") for i in range(20)] + ["Another prompt entirely"]
    answers = ev.generate(model, tokenizer, prompts, 24, 6)
    for prompt, answer in list(zip(prompts, answers))[::7]:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        expected = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]
        assert answer == tokenizer.decode(expected, skip_special_tokens=True).strip()
