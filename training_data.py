"""Prepare training data: FinQA/ConvFinQA program-of-thought pairs, skill-calling examples and text-to-SQL pairs.

    python training_data.py --finqa_dir examples/finqa --output_dir data/finqa
    python training_data.py -c --file examples/skills/weather_examples.txt --n_generations 5
    python training_data.py -t --files examples/skills/*_examples.txt > dataset/training_data.json
"""

import argparse
import logging
import sys

logger = logging.getLogger("training_data")


def fail(message):
    """Stop with a one-line error (no traceback) and exit status 1."""
    raise SystemExit(f"error: {message}")


# ---------------------------------------------------------------------------------------------------------------------
# FinQA / ConvFinQA (issue 3)
# ---------------------------------------------------------------------------------------------------------------------


def add_finqa_arguments(parser):
    group = parser.add_argument_group("FinQA / ConvFinQA")
    group.add_argument("--finqa_dir", help="Folder with FinQA train.json, dev.json, test.json (official format).")


def prepare_finqa(args):
    fail("FinQA preparation is not written yet")


# ---------------------------------------------------------------------------------------------------------------------
# Skill calling (issue 4)
# ---------------------------------------------------------------------------------------------------------------------


def add_skills_arguments(parser):
    group = parser.add_argument_group("skill calling")
    group.add_argument("-c", "--create", action="store_true", help="Generate new examples for one skill file.")
    group.add_argument("-t", "--collect", action="store_true", help="Collect example files into a training JSON.")


def create_skill_examples(args):
    fail("skill example generation is not written yet")


def collect_skill_examples(args):
    fail("skill example collection is not written yet")


# ---------------------------------------------------------------------------------------------------------------------
# Text-to-SQL (issue 6)
# ---------------------------------------------------------------------------------------------------------------------


def add_text2sql_arguments(parser):
    group = parser.add_argument_group("text-to-SQL")
    group.add_argument("--sql_data", help="sql-create-context style data (question, context, answer): file or hub name.")


def prepare_text2sql(args):
    fail("text-to-SQL preparation is not written yet")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_finqa_arguments(parser)
    add_skills_arguments(parser)
    add_text2sql_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.create:
        create_skill_examples(args)
    elif args.collect:
        collect_skill_examples(args)
    elif args.finqa_dir or getattr(args, "convfinqa_dir", None):
        prepare_finqa(args)
    elif args.sql_data:
        prepare_text2sql(args)
    else:
        parser.error("choose a mode: --finqa_dir/--convfinqa_dir, -c, -t or --sql_data")


if __name__ == "__main__":
    main()
