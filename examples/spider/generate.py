"""Regenerate the Spider-layout example: made-up questions over three tiny databases, in Spider's own files.

    python examples/spider/generate.py

Writes train_spider.json (db_id, question, query), tables.json (each database's tables and columns, as Spider's) and
database/<db_id>/<db_id>.sqlite next to this file. Every query is run on its database before anything is written, and
must return at least one row. `make spider-data` reads this folder when DATA is not given.
"""

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# db_id: (CREATE TABLE statements, rows per table)
DATABASES = {
    "concert_hall": (
        ["CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)",
         "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, title TEXT, year INTEGER, singer_id INTEGER "
         "REFERENCES singer(singer_id))"],
        {"singer": [(1, "Ana Silva", "Portugal", 31), (2, "Ben Okafor", "Nigeria", 45),
                    (3, "Chloe Martin", "France", 27),
                    (4, "Dev Patel", "India", 38), (5, "Emma Novak", "France", 52), (6, "Felix Braun", "Austria", 33)],
         "concert": [(1, "Spring Lights", 2019, 1), (2, "Harbour Nights", 2020, 3), (3, "Echoes", 2021, 3),
                     (4, "Northern Sky", 2021, 2), (5, "Blue Hour", 2022, 5), (6, "Last Light", 2023, 4)]},
    ),
    "library": (
        ["CREATE TABLE author (author_id INTEGER PRIMARY KEY, name TEXT, country TEXT)",
         "CREATE TABLE book (book_id INTEGER PRIMARY KEY, title TEXT, genre TEXT, year INTEGER, pages INTEGER, "
         "author_id INTEGER REFERENCES author(author_id))"],
        {"author": [(1, "Iris Vale", "Canada"), (2, "Omar Haddad", "Egypt"), (3, "Lena Berg", "Sweden")],
         "book": [(1, "Quiet Rivers", "novel", 2001, 320, 1), (2, "Salt Roads", "history", 1998, 410, 2),
                  (3, "The Cold Shore", "novel", 2010, 280, 3), (4, "Glass Gardens", "poetry", 2015, 96, 1),
                  (5, "Desert Stars", "novel", 2018, 350, 2), (6, "Maps of Home", "history", 2021, 500, 3)]},
    ),
    "shop": (
        ["CREATE TABLE product (product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL)",
         "CREATE TABLE sale (sale_id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES product(product_id), "
         "quantity INTEGER, month TEXT)"],
        {"product": [(1, "Kettle", "kitchen", 25.0), (2, "Toaster", "kitchen", 40.0), (3, "Desk Lamp", "office", 18.5),
                     (4, "Stapler", "office", 7.0), (5, "Blender", "kitchen", 60.0), (6, "Paper Tray", "office", 9.5)],
         "sale": [(1, 1, 3, "January"), (2, 2, 1, "January"), (3, 3, 5, "February"), (4, 1, 2, "March"),
                  (5, 5, 1, "March"), (6, 4, 10, "April"), (7, 2, 2, "April")]},
    ),
}

# db_id: [(question, query)]
QUESTIONS = {
    "concert_hall": [
        ("How many singers are there?", "SELECT count(*) FROM singer"),
        ("List the names of all singers.", "SELECT name FROM singer"),
        ("What are the names of singers from France?", "SELECT name FROM singer WHERE country = 'France'"),
        ("How many singers are older than 35?", "SELECT count(*) FROM singer WHERE age > 35"),
        ("What is the average age of all singers?", "SELECT avg(age) FROM singer"),
        ("Show the name and age of the oldest singer.", "SELECT name, age FROM singer ORDER BY age DESC LIMIT 1"),
        ("Which countries do the singers come from? List each once.", "SELECT DISTINCT country FROM singer"),
        ("How many singers come from each country?", "SELECT country, count(*) FROM singer GROUP BY country"),
        ("List the concert titles in 2021.", "SELECT title FROM concert WHERE year = 2021"),
        ("How many concerts were held after 2020?", "SELECT count(*) FROM concert WHERE year > 2020"),
        ("Show the titles of all concerts ordered by year.", "SELECT title FROM concert ORDER BY year"),
        ("What is the earliest concert year?", "SELECT min(year) FROM concert"),
        ("How many concerts are there in each year?", "SELECT year, count(*) FROM concert GROUP BY year"),
        ("Show the concert titles together with the names of their singers.",
         "SELECT T1.title, T2.name FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id"),
        ("What are the titles of concerts by singers from France?",
         "SELECT T1.title FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id "
         "WHERE T2.country = 'France'"),
        ("Which singer gave the most concerts? Give the name.",
         "SELECT T2.name FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id GROUP BY T1.singer_id "
         "ORDER BY count(*) DESC LIMIT 1"),
        ("List the names of singers who gave no concert.",
         "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert)"),
        ("What is the name of the youngest singer?", "SELECT name FROM singer ORDER BY age LIMIT 1"),
        ("Show the names of singers aged between 30 and 50.", "SELECT name FROM singer WHERE age BETWEEN 30 AND 50"),
        ("How many concerts did Chloe Martin give?",
         "SELECT count(*) FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id "
         "WHERE T2.name = 'Chloe Martin'"),
    ],
    "library": [
        ("How many books are there?", "SELECT count(*) FROM book"),
        ("List the titles of all novels.", "SELECT title FROM book WHERE genre = 'novel'"),
        ("What is the average number of pages of the books?", "SELECT avg(pages) FROM book"),
        ("Show the title of the longest book.", "SELECT title FROM book ORDER BY pages DESC LIMIT 1"),
        ("How many books are there of each genre?", "SELECT genre, count(*) FROM book GROUP BY genre"),
        ("Which books were published after 2010? Give their titles.", "SELECT title FROM book WHERE year > 2010"),
        ("List the names of all authors.", "SELECT name FROM author"),
        ("What country is Omar Haddad from?", "SELECT country FROM author WHERE name = 'Omar Haddad'"),
        ("How many authors are there?", "SELECT count(*) FROM author"),
        ("Show the book titles with the names of their authors.",
         "SELECT T1.title, T2.name FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id"),
        ("What are the titles of the books written by Iris Vale?",
         "SELECT T1.title FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id "
         "WHERE T2.name = 'Iris Vale'"),
        ("Which author wrote the most pages in total? Give the name.",
         "SELECT T2.name FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id GROUP BY T1.author_id "
         "ORDER BY sum(T1.pages) DESC LIMIT 1"),
        ("List the genres that have more than one book.", "SELECT genre FROM book GROUP BY genre HAVING count(*) > 1"),
        ("What is the earliest publication year?", "SELECT min(year) FROM book"),
        ("Show the titles of books with fewer than 300 pages.", "SELECT title FROM book WHERE pages < 300"),
        ("How many books has each author written? Show the author names.",
         "SELECT T2.name, count(*) FROM book AS T1 JOIN author AS T2 ON T1.author_id = T2.author_id "
         "GROUP BY T1.author_id"),
        ("List the book titles in order of publication year.", "SELECT title FROM book ORDER BY year"),
        ("What are the titles of history books published before 2000?",
         "SELECT title FROM book WHERE genre = 'history' AND year < 2000"),
    ],
    "shop": [
        ("How many products are there?", "SELECT count(*) FROM product"),
        ("List the names of kitchen products.", "SELECT name FROM product WHERE category = 'kitchen'"),
        ("What is the price of the most expensive product?", "SELECT max(price) FROM product"),
        ("Show the name of the cheapest product.", "SELECT name FROM product ORDER BY price LIMIT 1"),
        ("What is the average price of the products in each category?",
         "SELECT category, avg(price) FROM product GROUP BY category"),
        ("How many sales were made in March?", "SELECT count(*) FROM sale WHERE month = 'March'"),
        ("What is the total quantity sold?", "SELECT sum(quantity) FROM sale"),
        ("Show the total quantity sold in each month.", "SELECT month, sum(quantity) FROM sale GROUP BY month"),
        ("List the names of products that cost more than 20.", "SELECT name FROM product WHERE price > 20"),
        ("Show each sale's month together with the name of the product sold.",
         "SELECT T1.month, T2.name FROM sale AS T1 JOIN product AS T2 ON T1.product_id = T2.product_id"),
        ("How many units of the Kettle were sold?",
         "SELECT sum(T1.quantity) FROM sale AS T1 JOIN product AS T2 ON T1.product_id = T2.product_id "
         "WHERE T2.name = 'Kettle'"),
        ("Which product sold the most units? Give its name.",
         "SELECT T2.name FROM sale AS T1 JOIN product AS T2 ON T1.product_id = T2.product_id GROUP BY T1.product_id "
         "ORDER BY sum(T1.quantity) DESC LIMIT 1"),
        ("List the names of products that were never sold.",
         "SELECT name FROM product WHERE product_id NOT IN (SELECT product_id FROM sale)"),
        ("How many products are there in each category?", "SELECT category, count(*) FROM product GROUP BY category"),
        ("What are the distinct months with sales?", "SELECT DISTINCT month FROM sale"),
        ("Show the names of office products ordered by price.",
         "SELECT name FROM product WHERE category = 'office' ORDER BY price"),
    ],
}


def table_entry(db_id, statements):
    """The database's tables.json entry, read back from SQLite itself (as Spider's were made)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(";\n".join(statements))
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    columns, types, keys = [[-1, "*"]], ["text"], []
    for index, table in enumerate(tables):
        for _, column, kind, _, _, primary in conn.execute(f"PRAGMA table_info({table})"):
            columns.append([index, column])
            types.append("number" if kind in ("INTEGER", "REAL") else "text")
            if primary:
                keys.append(len(columns) - 1)
    conn.close()
    return {"db_id": db_id, "table_names_original": tables, "table_names": [t.replace("_", " ") for t in tables],
            "column_names_original": columns, "column_names": [[t, c.replace("_", " ")] for t, c in columns],
            "column_types": types, "primary_keys": keys, "foreign_keys": []}


def build_database(path, statements, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    conn = sqlite3.connect(temporary)
    conn.executescript(";\n".join(statements))
    for table, values in rows.items():
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values[0]))})", values)
    conn.commit()
    conn.close()
    os.chmod(temporary, 0o644)  # mkstemp's file is private
    os.replace(temporary, path)


def main():
    shutil.rmtree(HERE / "database", ignore_errors=True)
    tables, questions = [], []
    for db_id, (statements, rows) in DATABASES.items():
        path = HERE / "database" / db_id / f"{db_id}.sqlite"
        build_database(path, statements, rows)
        tables.append(table_entry(db_id, statements))
        conn = sqlite3.connect(path)
        for question, query in QUESTIONS[db_id]:
            assert conn.execute(query).fetchall(), f"{db_id}: no rows for {query}"
            questions.append({"db_id": db_id, "question": question, "query": query})
        conn.close()
    (HERE / "tables.json").write_text(json.dumps(tables, indent=1) + "\n")
    (HERE / "train_spider.json").write_text(json.dumps(questions, indent=1) + "\n")
    print(f"wrote {len(questions)} questions on {len(tables)} databases to {HERE}")


if __name__ == "__main__":
    main()
