"""Write the invented FinQA / ConvFinQA example sets in examples/finqa and examples/convfinqa.

    python examples/finqa/build_examples.py

The companies, figures and sentences are made up. The records follow the official FinQA layout (pre_text, post_text,
table, id, qa.question, qa.program, qa.exe_ans, qa.gold_inds) and the official ConvFinQA layout (annotation.
dialogue_break, turn_program, exe_ans_list, qa_split). exe_ans is computed here by a small FinQA program executor, so
it is exact; the data tests check that training_data.py's translated Python reproduces it.
"""

import json
import os
import random
import re

COMPANIES = [
    ("NWL", "northwind logistics", "freight and warehousing services"),
    ("HVF", "harborview foods", "packaged foods"),
    ("CRE", "cobalt ridge energy", "natural gas midstream assets"),
    ("BLM", "bluestem medical", "surgical instruments"),
    ("QSI", "quarry stone industries", "aggregates and building materials"),
    ("ALT", "altamira telecom", "regional fiber networks"),
    ("PGR", "pinegrove retail", "home improvement stores"),
    ("SVB", "silverbeck bancorp", "community banking"),
    ("ORC", "orchard chemicals", "specialty coatings"),
    ("TMS", "tidemark semiconductors", "power management chips"),
    ("WFA", "westfield aerospace", "aircraft components"),
    ("LKH", "lakehurst hotels", "select-service hotels"),
    ("RDX", "redwood data exchange", "payment processing software"),
    ("MPL", "meridian paper", "containerboard and packaging"),
    ("GCA", "granite creek auto", "automotive parts distribution"),
    ("FLS", "fairlane shipping", "dry bulk vessels"),
    ("SUN", "sunmeadow utilities", "electric and water utilities"),
    ("KNX", "kestrel networks", "enterprise security appliances"),
    ("BRW", "briarwood brands", "household cleaning products"),
    ("ETH", "everhart health", "outpatient clinics"),
    ("CPM", "copperline mining", "copper and zinc mines"),
    ("VST", "vista software", "accounting software subscriptions"),
    ("DLR", "dunmore rail", "short-line railroads"),
    ("OAK", "oakhaven insurance", "property and casualty insurance"),
]
# (row name, share of revenue range); net revenue anchors the other rows so the table stays plausible.
ROWS = [
    ("cost of sales", (0.52, 0.74)),
    ("selling general and administrative expenses", (0.10, 0.22)),
    ("research and development", (0.02, 0.09)),
    ("operating income", (0.07, 0.18)),
    ("net income", (0.04, 0.12)),
    ("capital expenditures", (0.03, 0.10)),
    ("depreciation and amortization", (0.03, 0.07)),
    ("cash and cash equivalents", (0.05, 0.20)),
    ("long-term debt", (0.20, 0.60)),
    ("dividends paid", (0.01, 0.04)),
]
TEMPLATES = [
    "percent_change", "change", "ratio", "margin", "add_rows", "add_years", "average_years", "table_sum",
    "table_average", "table_max", "table_min", "greater", "repurchase_cost", "backlog_millions", "employee_growth",
]


def run_program(program, table):
    """FinQA's executor: steps in order, #n refers to step n, table ops read a row, the result rounded to 5 places."""
    def number(text):
        text = text.replace(",", "").strip()
        if text.startswith("const_"):
            return -1.0 if text == "const_m1" else float(text[6:])
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return float(text)

    results = []
    for operation, inner in re.findall(r"(\w+)\(([^()]*)\)", program):
        if operation.startswith("table_"):
            name = inner.rsplit(",", 1)[0].strip()
            row = [r for r in table if r[0] == name][-1]
            values = [number(cell.replace("$", "").split("(")[0]) for cell in row[1:]]
            value = {"table_sum": sum(values), "table_average": sum(values) / len(values),
                     "table_max": max(values), "table_min": min(values)}[operation]
        else:
            a, b = (results[int(x.strip()[1:])] if x.strip().startswith("#") else number(x) for x in inner.split(","))
            operations = {"add": lambda: a + b, "subtract": lambda: a - b, "multiply": lambda: a * b,
                          "divide": lambda: a / b, "exp": lambda: a ** b, "greater": lambda: "yes" if a > b else "no"}
            value = operations[operation]()
        results.append(value)
    final = results[-1]
    return final if isinstance(final, str) else round(final, 5)


def fmt(value):
    return f"{value:.1f}"


def linearize(table, index):
    header, row = table[0], table[index]
    parts = [f"the {row[0]} of {header[i]} is {row[i]}" for i in range(1, len(row))]
    return " ; ".join(parts) + " ;"


def build_document(rng, company, years):
    ticker, name, business = company
    revenue = [rng.uniform(800, 9000)]
    for _ in years[1:]:
        revenue.append(revenue[-1] / rng.uniform(0.9, 1.15))  # years run newest first
    rows = rng.sample(ROWS, 4)
    table = [["( in millions )"] + [str(y) for y in years], ["net revenue"] + [f"$ {fmt(v)}" for v in revenue]]
    for row_name, (low, high) in rows:
        share = rng.uniform(low, high)
        table.append([row_name] + [fmt(v * share * rng.uniform(0.93, 1.07)) for v in revenue])
    extras = {
        "shares": round(rng.uniform(0.5, 9.5), 1),
        "price": round(rng.uniform(18, 140), 2),
        "backlog": round(rng.uniform(0.6, 12.0), 1),
        "employees_new": rng.randint(1800, 42000),
    }
    extras["employees_old"] = int(extras["employees_new"] / rng.uniform(0.85, 1.2))
    pre_text = [
        f"{name} is a leading provider of {business} in north america .",
        f"during {years[0]} , the company repurchased {extras['shares']} million shares of its common stock at an "
        f"average price of $ {extras['price']} per share .",
        f"the following table summarizes selected financial data for the years ended december 31 , {years[0]} , "
        f"{years[1]} and {years[2]} .",
    ]
    post_text = [
        f"at december 31 , {years[0]} , the company had approximately {extras['employees_new']:,} employees , compared "
        f"with {extras['employees_old']:,} at the end of {years[1]} .",
        f"backlog at the end of {years[0]} was $ {extras['backlog']} billion , most of which is expected to be "
        f"recognized within the next twelve months .",
        "management believes that cash from operations and available credit will be sufficient to fund operations .",
    ]
    return table, pre_text, post_text, extras


def row_value(table, index, column):
    return table[index][column].replace("$", "").strip()


def build_question(rng, template, table, pre_text, post_text, years, extras):
    """(question, program, table row indexes used, text indexes used) for one template."""
    n_rows = len(table)
    row = rng.randrange(1, n_rows)
    other = rng.choice([i for i in range(1, n_rows) if i != row])
    name = table[row][0]
    new, old = 1, rng.choice([2, 3])  # columns: newest year first
    y_new, y_old = years[new - 1], years[old - 1]
    v_new, v_old = row_value(table, row, new), row_value(table, row, old)
    if template == "percent_change":
        return (f"what was the percentage change in {name} from {y_old} to {y_new}?",
                f"subtract({v_new}, {v_old}), divide(#0, {v_old})", [row], [])
    if template == "change":
        return (f"what was the change in {name} between {y_old} and {y_new}?",
                f"subtract({v_new}, {v_old})", [row], [])
    if template == "ratio":
        a, b = sorted([row, other], key=lambda i: float(row_value(table, i, new)))
        return (f"what was the ratio of {table[a][0]} to {table[b][0]} in {y_new}?",
                f"divide({row_value(table, a, new)}, {row_value(table, b, new)})", [a, b], [])
    if template == "margin":
        part = rng.randrange(2, n_rows)
        return (f"what percentage of net revenue did {table[part][0]} represent in {y_new}?",
                f"divide({row_value(table, part, new)}, {row_value(table, 1, new)})", [part, 1], [])
    if template == "add_rows":
        a, b = sorted(rng.sample(range(2, n_rows), 2))
        return (f"what was the combined total of {table[a][0]} and {table[b][0]} in {y_new}?",
                f"add({row_value(table, a, new)}, {row_value(table, b, new)})", [a, b], [])
    if template == "add_years":
        return (f"what was the total {name} in {y_old} and {y_new} combined?",
                f"add({v_new}, {v_old})", [row], [])
    if template == "average_years":
        return (f"what was the average {name} for {y_old} and {y_new}?",
                f"add({v_new}, {v_old}), divide(#0, const_2)", [row], [])
    if template in ("table_sum", "table_average", "table_max", "table_min"):
        question = {
            "table_sum": f"what was the total {name} for the three years ended {years[0]}?",
            "table_average": f"what was the average {name} from {years[2]} to {years[0]}?",
            "table_max": f"what was the highest {name} in the three years shown?",
            "table_min": f"what was the lowest {name} in the three years shown?",
        }[template]
        return question, f"{template}({name}, none)", [row], []
    if template == "greater":
        return (f"was {name} in {y_new} greater than in {y_old}?", f"greater({v_new}, {v_old})", [row], [])
    if template == "repurchase_cost":
        return (f"what was the total cost of the shares repurchased in {years[0]} , in millions?",
                f"multiply({extras['shares']}, {extras['price']})", [], [1])
    if template == "backlog_millions":
        return (f"what was the backlog at the end of {years[0]} in millions?",
                f"multiply({extras['backlog']}, const_1000)", [], [len(pre_text) + 1])
    if template == "employee_growth":
        return (f"what was the percentage change in the number of employees from {years[1]} to {years[0]}?",
                f"subtract({extras['employees_new']}, {extras['employees_old']}), "
                f"divide(#0, {extras['employees_old']})", [], [len(pre_text)])
    raise ValueError(template)


def answer_text(program, exe_ans):
    if isinstance(exe_ans, str):
        return exe_ans
    if program.startswith(("divide", "subtract(")) and "divide" in program:
        return f"{exe_ans * 100:.1f}%"
    return f"{exe_ans:.2f}".rstrip("0").rstrip(".")


def build_finqa_split(split, count, seed):
    rng = random.Random(seed)
    records = []
    for index in range(count):
        company = rng.choice(COMPANIES)
        first = rng.randint(2012, 2023)
        years = [first, first - 1, first - 2]
        table, pre_text, post_text, extras = build_document(rng, company, years)
        template = TEMPLATES[index % len(TEMPLATES)]
        question, program, rows, texts = build_question(rng, template, table, pre_text, post_text, years, extras)
        exe_ans = run_program(program, table)
        sentences = pre_text + post_text
        gold_inds = {f"table_{i}": linearize(table, i) for i in rows}
        gold_inds.update({f"text_{i}": sentences[i] for i in texts})
        page = rng.randint(20, 90)
        records.append({
            "pre_text": pre_text,
            "post_text": post_text,
            "filename": f"{company[0]}/{years[0]}/page_{page}.pdf",
            "table": table,
            "id": f"{company[0]}/{years[0]}/page_{page}.pdf-{index + 1}",
            "qa": {
                "question": question,
                "program": program,
                "exe_ans": exe_ans,
                "answer": answer_text(program, exe_ans),
                "gold_inds": gold_inds,
            },
        })
    return records


def build_convfinqa_split(count, seed):
    rng = random.Random(seed)
    records = []
    for index in range(count):
        company = rng.choice(COMPANIES)
        first = rng.randint(2012, 2023)
        years = [first, first - 1, first - 2]
        table, pre_text, post_text, extras = build_document(rng, company, years)
        row = rng.randrange(1, len(table))
        name, old = table[row][0], rng.choice([2, 3])
        v_new, v_old = row_value(table, row, 1), row_value(table, row, old)
        questions = [
            f"what was the {name} in {years[0]}?",
            f"and in {years[old - 1]}?",
            "what was the change over that period?",
            "and how much does that change represent in relation to the earlier value?",
        ]
        programs = [v_new, v_old, f"subtract({v_new}, {v_old})", f"subtract({v_new}, {v_old}), divide(#0, {v_old})"]
        answers = [float(v_new), float(v_old)] + [run_program(p, table) for p in programs[2:]]
        page = rng.randint(20, 90)
        records.append({
            "pre_text": pre_text,
            "post_text": post_text,
            "filename": f"{company[0]}/{years[0]}/page_{page}.pdf",
            "table": table,
            "id": f"Single_{company[0]}/{years[0]}/page_{page}.pdf-{index + 1}",
            "annotation": {
                "original_program": programs[-1],
                "dialogue_break": questions,
                "turn_program": programs,
                "qa_split": [False] * len(questions),
                "exe_ans_list": answers,
            },
            "qa": {
                "question": f"what was the percentage change in {name} from {years[old - 1]} to {years[0]}?",
                "program": programs[-1],
                "exe_ans": answers[-1],
                "gold_inds": {f"table_{row}": linearize(table, row)},
            },
        })
    return records


def write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=1)
        handle.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for split, count, seed in (("train", 120, 1), ("dev", 30, 2), ("test", 30, 3)):
        write(os.path.join(here, f"{split}.json"), build_finqa_split(split, count, seed))
    convfinqa = os.path.join(os.path.dirname(here), "convfinqa")
    for split, count, seed in (("train", 9, 11), ("dev", 3, 12), ("test", 3, 13)):
        write(os.path.join(convfinqa, f"{split}.json"), build_convfinqa_split(count, seed))


if __name__ == "__main__":
    main()
