#!/usr/bin/env bash
# The README's "real data, never seen" rows: each shipped recipe's model, base vs fine-tuned, on public data that none
# of our examples came from, plus the real-size recipes (FinQA, tool calling, Spider) trained and scored here.
#
#   benchmarks/real_data.sh SAMPLES_DIR                    # every case whose run is in outputs/ (make <case>-train)
#   benchmarks/real_data.sh SAMPLES_DIR text2sql tools     # some cases: instruct finqa text2sql tools spider
#   benchmarks/real_data.sh SAMPLES_DIR finqa_full tools_full spider_full   # the real-size recipes (README rows)
#
# SAMPLES_DIR holds the public samples under these names (any copy of the same records will do):
#   alpaca_original_first100.json       Stanford Alpaca, first 100 records (instruction/input/output)
#   finqa_dev_200.json                  FinQA dev, official format
#   sql_create_context_100.json         b-mc2/sql-create-context, rows 0-99 (question/context/answer)
#   spider_train_sqlctx_7000.json       Spider train in sql-create-context layout with db_id
#   spider_train_db/<db_id>/<db_id>.sqlite   Spider's databases (spider_full: execution on the real databases)
#   openai_toolcall_stock_{train_86,valid_10}.jsonl   OpenAI chat fine-tuning records with tools/tool_calls
#   glaive_toolcall_en_demo_300.json    glaive function calling as ShareGPT (function_call/observation turns)
#   convfinqa_dev_421.json              ConvFinQA dev (finqa_full: every turn trains)
#   sealtools/{dev,test_in_domain,test_out_domain,tool}.jsonl   Seal-Tools (tools_full)
# Results go to $REAL_OUT/<case>-<data>/metrics.json (default outputs/real). Runs are read from $RUNS (outputs).
# The forgetting check (general perplexity) is measured by each case's `make <case>-eval`, not repeated here.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${1:?usage: benchmarks/real_data.sh SAMPLES_DIR [case ...]}
shift
CASES=${*:-instruct finqa text2sql tools spider}
RUNS=${RUNS:-outputs}
REAL_OUT=${REAL_OUT:-outputs/real}
PY=${PY:-.venv/bin/python}
EVAL="$PY eval.py --compare_base --general_eval False"

have_run() { [ -f "$RUNS/$1/adapter_config.json" ] || [ -f "$RUNS/$1/config.json" ] || { echo "skip $1: no run in $RUNS/$1 (make $1-train)"; return 1; }; }

for case in $CASES; do
  case $case in
  instruct)
    have_run instruct || continue
    $EVAL --model_name_or_path "$RUNS/instruct" --dataset "$SAMPLES/alpaca_original_first100.json" \
      --metrics perplexity,rouge --max_new_tokens 128 --output_dir "$REAL_OUT/instruct-alpaca" ;;
  finqa)
    have_run finqa || continue
    # the official dev file as the dev split of a FinQA folder; gold evidence as in the recipe (FINQA_CONTEXT=gold)
    mkdir -p "$REAL_OUT/data/finqa-source"
    cp "$SAMPLES/finqa_dev_200.json" "$REAL_OUT/data/finqa-source/dev.json"
    $PY training_data.py --finqa_dir "$REAL_OUT/data/finqa-source" --context gold --output_dir "$REAL_OUT/data/finqa"
    $EVAL --model_name_or_path "$RUNS/finqa" --dataset "$REAL_OUT/data/finqa" --split dev \
      --metrics execution_accuracy --max_new_tokens 256 --output_dir "$REAL_OUT/finqa-dev" ;;
  text2sql)
    have_run text2sql || continue
    # all 100 rows as the test split (the train split written beside it is our own examples, unused here)
    $PY training_data.py --sql_data examples/text2sql/train.json --sql_test_data "$SAMPLES/sql_create_context_100.json" \
      --output_dir "$REAL_OUT/data/sqlctx"
    $EVAL --model_name_or_path "$RUNS/text2sql" --dataset "$REAL_OUT/data/sqlctx" --split test \
      --metrics rouge,sql_exact_match,sql_execution_match --max_new_tokens 96 --output_dir "$REAL_OUT/text2sql-sqlctx"
    # Spider: the held-out databases of the Spider recipe's split below, so the two rows compare
    $PY training_data.py --sql_data "$SAMPLES/spider_train_sqlctx_7000.json" --sql_group_by db_id \
      --sql_max_records 600 --sql_max_test_records 100 --output_dir "$REAL_OUT/data/spider600"
    $EVAL --model_name_or_path "$RUNS/text2sql" --dataset "$REAL_OUT/data/spider600" --split test \
      --metrics rouge,sql_exact_match,sql_execution_match --max_new_tokens 128 --output_dir "$REAL_OUT/text2sql-spider" ;;
  spider)
    # the real-data recipe: the text2sql recipe on 600 Spider questions, whole databases held out for the test; its
    # folders are spider600, apart from the spider-* family's defaults (data/spider, outputs/spider)
    make text2sql-data DATA="$SAMPLES/spider_train_sqlctx_7000.json" DATA_OUT="$REAL_OUT/data/spider600" \
      DATA_ARGS="--sql_group_by db_id --sql_max_records 600 --sql_max_test_records 100"
    make text2sql-train DATA_OUT="$REAL_OUT/data/spider600" OUT="$RUNS/spider600" EPOCHS=1
    make text2sql-eval DATA_OUT="$REAL_OUT/data/spider600" OUT="$RUNS/spider600" \
      ARGS="--max_new_tokens 128 --output_dir $REAL_OUT/spider-spider" ;;
  finqa_full)
    # FinQA at the size we have: FinQA dev's 123 reports split by report (seeded) into test (50%), dev (25%: picks
    # the epoch) and train (25%), plus every ConvFinQA dev turn (298 other reports) as training; gold evidence.
    # A user with the official files gives FINQA_DIR/CONVFINQA_DIR (their train/dev/test) instead of this split.
    src="$REAL_OUT/data/finqa_full-source"
    mkdir -p "$src/finqa" "$src/convfinqa"
    $PY - "$SAMPLES/finqa_dev_200.json" "$src/finqa" <<'EOF'
import json, random, sys
records = json.load(open(sys.argv[1]))
reports = sorted({r["id"].rsplit("-", 1)[0] for r in records})
random.Random(42).shuffle(reports)
cut = {"test": reports[: len(reports) // 2], "dev": reports[len(reports) // 2: len(reports) * 3 // 4]}
split = {report: name for name, names in cut.items() for report in names}
for name in ("train", "dev", "test"):
    rows = [r for r in records if split.get(r["id"].rsplit("-", 1)[0], "train") == name]
    json.dump(rows, open(f"{sys.argv[2]}/{name}.json", "w"))
    print(f"finqa {name}: {len(rows)} questions")
EOF
    cp "$SAMPLES/convfinqa_dev_421.json" "$src/convfinqa/train.json"
    make finqa-data FINQA_DIR="$src/finqa" CONVFINQA_DIR="$src/convfinqa" DATA_OUT="$REAL_OUT/data/finqa_full"
    make finqa-tune DATA_OUT="$REAL_OUT/data/finqa_full" OUT="$RUNS/finqa_full" TUNE_LRS="${FINQA_LRS:-1e-3}" \
      EPOCHS="${FINQA_EPOCHS:-3}"
    best=$(sed -n 's/^# best checkpoint: //p' "$RUNS/finqa_full-tune/best.yaml")
    $PY eval.py --model_name_or_path "$best" --dataset "$REAL_OUT/data/finqa_full" --split test \
      --metrics execution_accuracy --compare_base --max_new_tokens 256 --output_dir "$REAL_OUT/finqa_full-test" ;;
  tools_full)
    # Tool calling at the size we have: Seal-Tools' dev and in-domain test (its train split is not public here),
    # glaive (a held-out tenth as test), the OpenAI records and ours train; 3 distractors beside every row's own
    # functions and 15% no-call copies (the request with only other functions offered). Scored on Seal-Tools'
    # out-of-domain rows whose functions training never offers (test_unseen_functions), with the distractors and
    # without them (one row's own functions only: data/tools_full-plain), on glaive's tenth and OpenAI's valid file.
    seal="$SAMPLES/sealtools"
    data="$REAL_OUT/data/tools_full"
    renames="dev=train,test_in_domain=train,test_out_domain=test_unseen_functions"
    make tools-data DATA="$seal $SAMPLES/glaive_toolcall_en_demo_300.json \
      $SAMPLES/openai_toolcall_stock_train_86.jsonl=train $SAMPLES/openai_toolcall_stock_valid_10.jsonl=test_openai \
      examples/tools/train.jsonl=train examples/tools/validation.jsonl=validation" DATA_OUT="$data" \
      DATA_ARGS="--tools_splits $renames --tools_distractors 3 --tools_no_call_share 0.15"
    make tools-data DATA="$seal" DATA_OUT="$data-plain" DATA_ARGS="--tools_splits $renames"
    # glaive and OpenAI conversations go on after the first call (its result, an answer): cut there, so that the
    # row is scored on the call (or kept whole: a plain answer, no call expected)
    $PY - "$data/test.jsonl" "$data/test_openai.jsonl" <<'EOF'
import json, sys
for path in sys.argv[1:]:
    rows = [json.loads(line) for line in open(path)]
    for row in rows:
        first = next((i for i, m in enumerate(row["messages"]) if m.get("tool_calls")), len(row["messages"]) - 1)
        row["messages"] = row["messages"][: first + 1]
    open(path, "w").write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
EOF
    # rows average ~930 tokens (3 distractors' schemas; a multi-call row runs to 2,500): 768 tokens keep the shorter
    # half, mostly single calls; 110 steps of 8 fit ~35 min on 2 cores (at 1024 tokens a step took 36-42 s)
    make tools-train DATA_OUT="$data" OUT="$RUNS/tools_full" EPOCHS=1 \
      ARGS="--max_length 768 --too_long drop --max_steps ${TOOLS_STEPS:-110} --eval_strategy no"
    # the base only on the main split: ~3.5 s a generation here (prompts of ~900 tokens), 12 min for its 202 rows
    $PY eval.py --model_name_or_path "$RUNS/tools_full" --dataset "$data" --split test_unseen_functions \
      --metrics tool_call_match --compare_base --max_new_tokens 160 --output_dir "$REAL_OUT/tools_full-unseen"
    for split in test test_openai; do
      $PY eval.py --model_name_or_path "$RUNS/tools_full" --dataset "$data" --split $split --metrics tool_call_match \
        --max_new_tokens 160 --output_dir "$REAL_OUT/tools_full-$split"
    done
    $PY eval.py --model_name_or_path "$RUNS/tools_full" --dataset "$data-plain" --split test_unseen_functions \
      --metrics tool_call_match --max_new_tokens 160 --output_dir "$REAL_OUT/tools_full-plain" ;;
  spider_full)
    # the README's "Spider at full size" row: every question, 18 databases held out, one epoch (388 steps of 16,
    # 46 min on 2 cores of an AVX512-BF16 EPYC; SPIDER_STEPS=240 for the shorter run), scored on the held-out
    # databases' real SQLite files, greedy and then with execution-guided decoding (4 beam candidates)
    make spider-data DATA="$SAMPLES/spider_train_sqlctx_7000.json" SQL_DB="$SAMPLES/spider_train_db" \
      DATA_OUT="$REAL_OUT/data/spider_full" DATA_ARGS="--sql_missing_databases drop"
    make spider-train DATA_OUT="$REAL_OUT/data/spider_full" OUT="$RUNS/spider_full" \
      ARGS="--max_steps ${SPIDER_STEPS:--1} --eval_strategy no --save_strategy no"
    make spider-eval DATA_OUT="$REAL_OUT/data/spider_full" OUT="$RUNS/spider_full" SQL_DB="$SAMPLES/spider_train_db"
    $PY eval.py --model_name_or_path "$RUNS/spider_full" --dataset "$REAL_OUT/data/spider_full" --split validation \
      --metrics sql_execution_match,sql_exact_match --max_new_tokens 160 --sql_database_dir "$SAMPLES/spider_train_db" \
      --general_eval False --sql_execution_guided 4 --output_dir "$REAL_OUT/spider_full-guided" ;;
  tools)
    have_run tools || continue
    mkdir -p "$REAL_OUT/data"
    cat "$SAMPLES"/openai_toolcall_stock_{train_86,valid_10}.jsonl > "$REAL_OUT/data/openai_toolcall_96.jsonl"
    $EVAL --model_name_or_path "$RUNS/tools" --dataset "$REAL_OUT/data/openai_toolcall_96.jsonl" \
      --metrics tool_call_match --max_new_tokens 96 --output_dir "$REAL_OUT/tools-openai"
    # glaive conversations cut after the first function call (or kept whole: a plain answer, no call expected)
    $PY - "$SAMPLES/glaive_toolcall_en_demo_300.json" "$REAL_OUT/data/glaive_first_call.json" <<'EOF'
import json, sys
records = json.load(open(sys.argv[1]))
for record in records:
    turns = record["conversations"]
    first = next((i for i, t in enumerate(turns) if t["from"] == "function_call"), len(turns) - 1)
    record["conversations"] = turns[: first + 1]
json.dump(records, open(sys.argv[2], "w"), ensure_ascii=False)
EOF
    $EVAL --model_name_or_path "$RUNS/tools" --dataset "$REAL_OUT/data/glaive_first_call.json" --max_samples 100 \
      --metrics tool_call_match --max_new_tokens 96 --output_dir "$REAL_OUT/tools-glaive" ;;
  *) echo "unknown case $case (instruct finqa text2sql tools spider finqa_full tools_full spider_full)" >&2; exit 2 ;;
  esac
done
echo "Results: $REAL_OUT/*/metrics.json"
