"""Regenerate the text-to-SQL example data (sql-create-context schema: question, context, answer).

    python examples/text2sql/generate.py

Writes train.json/test.json (stage 1: named tables, joins) and stage2_train.json/stage2_test.json (stage 2: WikiSQL-like
`table_name_NN` tables with descriptive column names) next to this file. Every answer is executed against its schema
in SQLite (with a few rows inserted, the question's literals among them) before anything is written.
"""

import json
import os
import random
import sqlite3
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7

# table: (singular, plural, text columns {column: (phrase, values)}, numeric columns {column: (phrase, type, lo, hi)})
TABLES = {
    "employee": (
        "employee",
        "employees",
        {
            "name": ("name", ["Maria Lopez", "Tom Becker", "Aisha Khan", "Liam Chen"]),
            "job_title": ("job title", ["Analyst", "Engineer", "Manager", "Clerk"]),
            "city": ("city", ["Denver", "Austin", "Boston", "Tampa"]),
        },
        {"salary": ("salary", "INTEGER", 30000, 150000), "age": ("age", "INTEGER", 20, 65)},
    ),
    "department": (
        "department",
        "departments",
        {
            "dept_name": ("department name", ["Sales", "Finance", "Legal", "Research"]),
            "location": ("location", ["Chicago", "Dallas", "Seattle", "Miami"]),
        },
        {"budget": ("budget", "INTEGER", 100000, 900000), "num_staff": ("number of staff", "INTEGER", 3, 80)},
    ),
    "student": (
        "student",
        "students",
        {
            "first_name": ("first name", ["Emma", "Noah", "Olivia", "Lucas"]),
            "major": ("major", ["Biology", "History", "Physics", "Economics"]),
            "hometown": ("hometown", ["Springfield", "Riverside", "Fairview", "Madison"]),
        },
        {"gpa": ("GPA", "REAL", 2.0, 4.0), "credits": ("number of credits", "INTEGER", 10, 130)},
    ),
    "course": (
        "course",
        "courses",
        {
            "title": ("title", ["Linear Algebra", "World History", "Organic Chemistry", "Microeconomics"]),
            "instructor": ("instructor", ["Dr. Patel", "Dr. Novak", "Dr. Okafor", "Dr. Rossi"]),
        },
        {"credit_hours": ("credit hours", "INTEGER", 1, 5), "enrollment": ("enrollment", "INTEGER", 10, 300)},
    ),
    "book": (
        "book",
        "books",
        {
            "title": ("title", ["The Silent Coast", "Winter Harvest", "Glass Cities", "Paper Moons"]),
            "author": ("author", ["Ruth Mills", "Omar Haddad", "Ken Sato", "Ana Silva"]),
            "genre": ("genre", ["Mystery", "Fantasy", "Biography", "Poetry"]),
        },
        {
            "pages": ("number of pages", "INTEGER", 90, 900),
            "price": ("price", "REAL", 5.0, 60.0),
            "publication_year": ("publication year", "INTEGER", 1950, 2023),
        },
    ),
    "movie": (
        "movie",
        "movies",
        {
            "title": ("title", ["Night Train", "Blue Harbor", "Iron Garden", "Last Signal"]),
            "director": ("director", ["Greta Wolf", "Sam Ortiz", "Mei Lin", "Paul Grant"]),
            "rating": ("rating", ["PG", "PG-13", "R", "G"]),
        },
        {
            "release_year": ("release year", "INTEGER", 1970, 2023),
            "runtime": ("runtime", "INTEGER", 80, 200),
            "box_office": ("box office gross", "INTEGER", 1000000, 900000000),
        },
    ),
    "product": (
        "product",
        "products",
        {
            "product_name": ("product name", ["Desk Lamp", "Water Bottle", "Office Chair", "Notebook"]),
            "category": ("category", ["Furniture", "Kitchen", "Stationery", "Lighting"]),
        },
        {"unit_price": ("unit price", "REAL", 1.0, 500.0), "stock": ("stock level", "INTEGER", 0, 900)},
    ),
    "customer": (
        "customer",
        "customers",
        {
            "customer_name": ("name", ["Nina Park", "Jorge Ruiz", "Ella Brooks", "Victor Hale"]),
            "country": ("country", ["Canada", "Mexico", "France", "Japan"]),
            "membership": ("membership level", ["Gold", "Silver", "Bronze", "Basic"]),
        },
        {"loyalty_points": ("loyalty points", "INTEGER", 0, 5000)},
    ),
    "orders": (
        "order",
        "orders",
        {
            "status": ("status", ["Shipped", "Pending", "Cancelled", "Delivered"]),
            "payment_method": ("payment method", ["Card", "Cash", "Transfer", "Voucher"]),
        },
        {"amount": ("amount", "REAL", 5.0, 2000.0), "quantity": ("quantity", "INTEGER", 1, 50)},
    ),
    "flight": (
        "flight",
        "flights",
        {
            "flight_number": ("flight number", ["BA117", "LH402", "AF66", "UA901"]),
            "origin": ("origin", ["London", "Frankfurt", "Paris", "Chicago"]),
            "destination": ("destination", ["Tokyo", "Toronto", "Lima", "Oslo"]),
        },
        {
            "distance": ("distance", "INTEGER", 300, 9000),
            "duration_minutes": ("duration in minutes", "INTEGER", 45, 800),
        },
    ),
    "airport": (
        "airport",
        "airports",
        {
            "airport_name": ("airport name", ["Harbor Field", "North Point", "Lakeside Intl", "Mesa Regional"]),
            "city": ("city", ["Portland", "Omaha", "Reno", "Boise"]),
        },
        {"runways": ("number of runways", "INTEGER", 1, 6), "elevation": ("elevation", "INTEGER", 0, 2000)},
    ),
    "hospital": (
        "hospital",
        "hospitals",
        {
            "hospital_name": ("hospital name", ["St. Mary", "Mercy General", "Valley Care", "City Central"]),
            "region": ("region", ["North", "South", "East", "West"]),
        },
        {"beds": ("number of beds", "INTEGER", 50, 900), "founded": ("founding year", "INTEGER", 1880, 2015)},
    ),
    "patient": (
        "patient",
        "patients",
        {
            "patient_name": ("name", ["Carl Ward", "Lena Fox", "Ravi Das", "Iris Hall"]),
            "blood_type": ("blood type", ["A+", "B-", "O+", "AB+"]),
            "diagnosis": ("diagnosis", ["Asthma", "Diabetes", "Fracture", "Migraine"]),
        },
        {"age": ("age", "INTEGER", 1, 95), "stay_days": ("length of stay in days", "INTEGER", 0, 30)},
    ),
    "team": (
        "team",
        "teams",
        {
            "team_name": ("team name", ["Falcons", "Tigers", "Comets", "Rangers"]),
            "home_city": ("home city", ["Detroit", "Houston", "Phoenix", "Atlanta"]),
        },
        {
            "wins": ("number of wins", "INTEGER", 0, 60),
            "losses": ("number of losses", "INTEGER", 0, 60),
            "founded_year": ("founding year", "INTEGER", 1900, 2010),
        },
    ),
    "player": (
        "player",
        "players",
        {
            "player_name": ("name", ["Jake Moore", "Luis Vega", "Sam Price", "Dan Kerr"]),
            "position": ("position", ["Guard", "Forward", "Center", "Goalkeeper"]),
            "nationality": ("nationality", ["Spain", "Brazil", "Canada", "Ghana"]),
        },
        {"goals": ("number of goals", "INTEGER", 0, 40), "height_cm": ("height in centimeters", "INTEGER", 160, 215)},
    ),
    "stadium": (
        "stadium",
        "stadiums",
        {
            "stadium_name": ("stadium name", ["Eagle Park", "Union Arena", "Harbor Dome", "Pine Field"]),
            "city": ("city", ["Leeds", "Porto", "Lyon", "Turin"]),
        },
        {"capacity": ("capacity", "INTEGER", 5000, 90000), "opened": ("opening year", "INTEGER", 1920, 2020)},
    ),
    "song": (
        "song",
        "songs",
        {
            "song_title": ("title", ["Golden Hour", "Paper Planes", "River Song", "Neon Lights"]),
            "artist": ("artist", ["The Lanterns", "Mia Rowe", "Echo Drive", "Jon Bell"]),
            "genre": ("genre", ["Pop", "Jazz", "Rock", "Folk"]),
        },
        {
            "duration_seconds": ("duration in seconds", "INTEGER", 120, 420),
            "streams": ("number of streams", "INTEGER", 1000, 5000000),
        },
    ),
    "restaurant": (
        "restaurant",
        "restaurants",
        {
            "restaurant_name": ("name", ["Blue Olive", "Casa Verde", "The Copper Pot", "Saffron House"]),
            "cuisine": ("cuisine", ["Italian", "Mexican", "Indian", "Thai"]),
            "neighborhood": ("neighborhood", ["Downtown", "Old Town", "Harbor", "Uptown"]),
        },
        {"rating": ("rating", "REAL", 1.0, 5.0), "seats": ("number of seats", "INTEGER", 12, 200)},
    ),
    "vehicle": (
        "vehicle",
        "vehicles",
        {
            "make": ("make", ["Toyota", "Ford", "Honda", "Volvo"]),
            "fuel_type": ("fuel type", ["Petrol", "Diesel", "Electric", "Hybrid"]),
            "color": ("color", ["Red", "Black", "White", "Silver"]),
        },
        {"model_year": ("model year", "INTEGER", 2000, 2024), "mileage": ("mileage", "INTEGER", 0, 200000)},
    ),
    "property": (
        "property",
        "properties",
        {
            "address": ("address", ["12 Oak Street", "4 Elm Road", "88 Bay Avenue", "7 Hill Lane"]),
            "property_type": ("property type", ["House", "Apartment", "Condo", "Townhouse"]),
            "district": ("district", ["Northside", "Westend", "Riverside", "Central"]),
        },
        {"bedrooms": ("number of bedrooms", "INTEGER", 1, 6), "list_price": ("list price", "INTEGER", 90000, 1500000)},
    ),
    "account": (
        "account",
        "accounts",
        {
            "account_holder": ("account holder", ["Grace Lee", "Omar Sharif", "Paula Diaz", "Ben Ward"]),
            "account_type": ("account type", ["Checking", "Savings", "Brokerage", "Retirement"]),
            "branch": ("branch", ["Main Street", "Airport", "Mall", "University"]),
        },
        {"balance": ("balance", "REAL", 0.0, 250000.0), "open_year": ("opening year", "INTEGER", 1995, 2024)},
    ),
    "loan": (
        "loan",
        "loans",
        {
            "loan_type": ("loan type", ["Mortgage", "Auto", "Student", "Personal"]),
            "borrower": ("borrower", ["Ivan Petrov", "Sara Cole", "Mei Wong", "Adam Frost"]),
        },
        {
            "principal": ("principal", "INTEGER", 1000, 800000),
            "interest_rate": ("interest rate", "REAL", 1.5, 15.0),
            "term_months": ("term in months", "INTEGER", 12, 360),
        },
    ),
    "stock": (
        "stock",
        "stocks",
        {
            "ticker": ("ticker", ["ACME", "BLUE", "NOVA", "ZENT"]),
            "sector": ("sector", ["Energy", "Technology", "Utilities", "Healthcare"]),
            "exchange": ("exchange", ["NYSE", "NASDAQ", "LSE", "TSX"]),
        },
        {
            "share_price": ("share price", "REAL", 2.0, 900.0),
            "market_cap": ("market capitalization", "INTEGER", 10000000, 900000000000),
            "pe_ratio": ("P/E ratio", "REAL", 3.0, 80.0),
        },
    ),
    "invoice": (
        "invoice",
        "invoices",
        {
            "invoice_number": ("invoice number", ["INV-1001", "INV-2044", "INV-3310", "INV-4502"]),
            "vendor": ("vendor", ["Acme Supplies", "Delta Parts", "Orbit Media", "Peak Logistics"]),
            "currency": ("currency", ["USD", "EUR", "GBP", "JPY"]),
        },
        {"total": ("total", "REAL", 10.0, 90000.0), "days_overdue": ("days overdue", "INTEGER", 0, 120)},
    ),
    "country": (
        "country",
        "countries",
        {
            "country_name": ("name", ["Norway", "Chile", "Kenya", "Vietnam"]),
            "continent": ("continent", ["Europe", "South America", "Africa", "Asia"]),
            "capital": ("capital", ["Oslo", "Santiago", "Nairobi", "Hanoi"]),
        },
        {
            "population": ("population", "INTEGER", 300000, 300000000),
            "area_km2": ("area in square kilometers", "INTEGER", 1000, 9000000),
        },
    ),
    "mountain": (
        "mountain",
        "mountains",
        {
            "mountain_name": ("name", ["Mount Ardent", "Grey Peak", "Kala Ridge", "Snow Crown"]),
            "range_name": ("range", ["Andes", "Alps", "Rockies", "Himalaya"]),
        },
        {
            "height_m": ("height in meters", "INTEGER", 1200, 8800),
            "first_ascent": ("year of first ascent", "INTEGER", 1786, 1990),
        },
    ),
    "ship": (
        "ship",
        "ships",
        {
            "ship_name": ("name", ["Northern Star", "Sea Breeze", "Atlas", "Marigold"]),
            "ship_type": ("type", ["Tanker", "Ferry", "Cargo", "Cruise"]),
            "flag": ("flag", ["Panama", "Liberia", "Malta", "Greece"]),
        },
        {"tonnage": ("tonnage", "INTEGER", 1000, 200000), "built_year": ("year built", "INTEGER", 1970, 2022)},
    ),
    "conference": (
        "conference",
        "conferences",
        {
            "conf_name": ("name", ["DataSummit", "CloudCon", "BioForum", "EdTech Days"]),
            "venue_city": ("city", ["Berlin", "Singapore", "Toronto", "Sydney"]),
        },
        {"attendees": ("number of attendees", "INTEGER", 100, 20000), "conf_year": ("year", "INTEGER", 2010, 2024)},
    ),
    "museum": (
        "museum",
        "museums",
        {
            "museum_name": ("name", ["Modern Art Hall", "Science Works", "Heritage House", "Ocean Gallery"]),
            "museum_type": ("type", ["Art", "Science", "History", "Natural History"]),
        },
        {
            "annual_visitors": ("annual visitors", "INTEGER", 10000, 5000000),
            "ticket_price": ("ticket price", "REAL", 0.0, 35.0),
        },
    ),
    "warehouse": (
        "warehouse",
        "warehouses",
        {
            "warehouse_code": ("code", ["WH-A", "WH-B", "WH-C", "WH-D"]),
            "state": ("state", ["Ohio", "Texas", "Nevada", "Georgia"]),
        },
        {
            "capacity_units": ("capacity in units", "INTEGER", 1000, 90000),
            "staff_count": ("staff count", "INTEGER", 5, 300),
        },
    ),
}

# child table -> (foreign key column, parent table, parent key column); the parent key is added to the parent schema
JOINS = {
    "employee": ("department_id", "department", "department_id"),
    "patient": ("hospital_id", "hospital", "hospital_id"),
    "player": ("team_id", "team", "team_id"),
    "orders": ("customer_id", "customer", "customer_id"),
    "loan": ("account_id", "account", "account_id"),
    "flight": ("airport_id", "airport", "airport_id"),
    "course": ("department_id", "department", "department_id"),
    "team": ("stadium_id", "stadium", "stadium_id"),
}

# stage 2: WikiSQL-like flavour, generic table names and longer descriptive columns, all declared VARCHAR
STAGE2_TABLES = [
    (
        "election result",
        "election results",
        {
            "candidate": ("candidate", ["John Harlow", "Rita Moreno", "Ed Sims", "Kay Dunn"]),
            "party": ("party", ["Democratic", "Republican", "Green", "Independent"]),
            "district": ("district", ["Ohio 3", "Texas 12", "Iowa 1", "Maine 2"]),
        },
        {"votes": ("votes", "INTEGER", 1000, 300000), "first_elected": ("first elected", "INTEGER", 1970, 2020)},
    ),
    (
        "episode",
        "episodes",
        {
            "title": ("title", ["Pilot", "The Return", "Lost Keys", "Dark Water"]),
            "directed_by": ("director", ["Anne Cole", "Rob Tate", "Lee Chang", "Joe Marr"]),
            "written_by": ("writer", ["Kim Ross", "Dev Shah", "Amy Lund", "Pat Neal"]),
        },
        {
            "no_in_series": ("number in series", "INTEGER", 1, 120),
            "us_viewers_millions": ("US viewers in millions", "REAL", 1.0, 25.0),
        },
    ),
    (
        "race",
        "races",
        {
            "grand_prix": ("grand prix", ["Monaco", "Brazilian", "Japanese", "Belgian"]),
            "winning_driver": ("winning driver", ["Ayrton Moss", "Niki Hart", "Jim Clarkson", "Alain Berg"]),
            "constructor": ("constructor", ["Lotus", "Brabham", "Tyrrell", "March"]),
        },
        {"round": ("round", "INTEGER", 1, 20), "laps": ("laps", "INTEGER", 40, 80)},
    ),
    (
        "match",
        "matches",
        {
            "home_team": ("home team", ["Carlton", "Essendon", "Geelong", "Richmond"]),
            "away_team": ("away team", ["Hawthorn", "Fitzroy", "Footscray", "Collingwood"]),
            "venue": ("venue", ["Princes Park", "Kardinia Park", "Victoria Park", "Lake Oval"]),
        },
        {"crowd": ("crowd", "INTEGER", 5000, 60000), "home_score": ("home team score", "INTEGER", 30, 150)},
    ),
    (
        "season record",
        "season records",
        {
            "team": ("team", ["Boston", "Utah", "Denver", "Orlando"]),
            "coach": ("coach", ["Hal Price", "Ron Vale", "Stu Park", "Gil Ames"]),
        },
        {
            "season": ("season", "INTEGER", 1980, 2022),
            "wins": ("wins", "INTEGER", 10, 70),
            "losses": ("losses", "INTEGER", 10, 70),
        },
    ),
    (
        "golfer",
        "golfers",
        {
            "player": ("player", ["Tom Lyle", "Ernie Kite", "Greg Nash", "Sandy Fox"]),
            "country": ("country", ["Scotland", "South Africa", "Australia", "United States"]),
        },
        {
            "score": ("score", "INTEGER", 260, 300),
            "money": ("money", "INTEGER", 5000, 900000),
            "wins": ("wins", "INTEGER", 0, 20),
        },
    ),
    (
        "building",
        "buildings",
        {
            "name": ("name", ["Harbor Tower", "One Central", "Sky Plaza", "Union Center"]),
            "city": ("city", ["Dubai", "Chicago", "Shanghai", "Toronto"]),
        },
        {
            "floors": ("floors", "INTEGER", 20, 160),
            "height_m": ("height in meters", "INTEGER", 90, 830),
            "year_completed": ("year completed", "INTEGER", 1930, 2022),
        },
    ),
    (
        "county",
        "counties",
        {
            "county": ("county", ["Adams", "Baker", "Clark", "Dawson"]),
            "county_seat": ("county seat", ["Brighton", "Ellis", "Vancouver", "Lexington"]),
        },
        {
            "population": ("population", "INTEGER", 1000, 900000),
            "area_sq_mi": ("area in square miles", "INTEGER", 100, 5000),
        },
    ),
    (
        "tournament",
        "tournaments",
        {
            "tournament": ("tournament", ["Madrid Open", "Swiss Indoors", "Paris Masters", "Dubai Open"]),
            "surface": ("surface", ["Clay", "Hard", "Grass", "Carpet"]),
            "opponent": ("opponent", ["Rafael Soto", "Andy Marsh", "Juan Pico", "Marat Ilin"]),
        },
        {"year": ("year", "INTEGER", 1995, 2023)},
    ),
    (
        "locomotive",
        "locomotives",
        {
            "builder": ("builder", ["Baldwin", "Alco", "Beyer Peacock", "Vulcan"]),
            "wheel_arrangement": ("wheel arrangement", ["4-6-0", "2-8-2", "0-6-0", "4-4-2"]),
        },
        {"number_built": ("number built", "INTEGER", 1, 400), "year_built": ("year built", "INTEGER", 1850, 1950)},
    ),
    (
        "radio station",
        "radio stations",
        {
            "call_sign": ("call sign", ["KXLU", "WBGO", "KEXP", "WFMU"]),
            "city_of_license": ("city of license", ["Seattle", "Newark", "Los Angeles", "Jersey City"]),
            "format": ("format", ["Jazz", "Talk", "Country", "Classical"]),
        },
        {"frequency_mhz": ("frequency in MHz", "REAL", 88.0, 108.0), "erp_w": ("ERP in watts", "INTEGER", 100, 100000)},
    ),
    (
        "swimmer",
        "swimmers",
        {
            "name": ("name", ["Ian Thorpe", "Kate Ross", "Laszlo Cseh", "Mia Berg"]),
            "nationality": ("nationality", ["Australia", "Hungary", "Germany", "Japan"]),
        },
        {
            "lane": ("lane", "INTEGER", 1, 8),
            "rank": ("rank", "INTEGER", 1, 8),
            "time_seconds": ("time in seconds", "REAL", 47.0, 130.0),
        },
    ),
]


# totals that mean nothing (a sum of ages, years or prices) are not asked for
NO_TOTAL = {
    "age",
    "height_cm",
    "elevation",
    "height_m",
    "runtime",
    "duration_minutes",
    "duration_seconds",
    "gpa",
    "rating",
    "price",
    "unit_price",
    "share_price",
    "pe_ratio",
    "interest_rate",
    "ticket_price",
    "term_months",
    "bedrooms",
    "runways",
    "lane",
    "rank",
    "round",
    "no_in_series",
    "frequency_mhz",
    "score",
    "days_overdue",
    "stay_days",
    "credit_hours",
    "floors",
    "laps",
    "time_seconds",
    "us_viewers_millions",
}


def summable(column, phrase):
    return column not in NO_TOTAL and "year" not in phrase and phrase not in ("first elected", "season")


def quote(value):
    return "'" + value.replace("'", "''") + "'"


def number_literal(rng, col_type, lo, hi):
    if col_type == "REAL":
        return round(rng.uniform(lo, hi), 1)
    value = rng.randint(lo, hi)
    # round numbers read naturally in questions ("more than 50000")
    for step in (100000, 10000, 1000, 100, 10):
        if hi - lo >= step * 20:
            return max(lo, value // step * step)
    return value


def schema_sql(table, columns):
    """CREATE TABLE with only the columns the query uses, the way sql-create-context writes it."""
    return f"CREATE TABLE {table} (" + ", ".join(f"{name} {ctype}" for name, ctype in columns) + ")"


def single_table_examples(rng, table, singular, plural, text_cols, num_cols, varchar_only=False):
    """All template instances for one table: (question, context, answer)."""
    examples = []

    def ctype(kind):
        return "VARCHAR" if varchar_only or kind == "TEXT" else kind

    def ctx(*cols):
        seen, columns = set(), []
        for name in cols:
            if name in seen:
                continue
            seen.add(name)
            kind = num_cols[name][1] if name in num_cols else "TEXT"
            columns.append((name, ctype(kind)))
        return schema_sql(table, columns)

    def add(question, context, answer):
        examples.append({"question": question, "context": context, "answer": answer})

    texts, nums = list(text_cols), list(num_cols)
    for t in texts:
        t_phrase, t_values = text_cols[t]
        other_texts = [o for o in texts if o != t]
        for value in rng.sample(t_values, 2):
            for o in other_texts[:2]:
                o_phrase = text_cols[o][0]
                add(
                    rng.choice(
                        [
                            f"What is the {o_phrase} of the {singular} whose {t_phrase} is {value}?",
                            f"Which {o_phrase} does the {singular} with {t_phrase} {value} have?",
                        ]
                    ),
                    ctx(o, t),
                    f"SELECT {o} FROM {table} WHERE {t} = {quote(value)}",
                )
            add(
                rng.choice(
                    [
                        f"How many {plural} have the {t_phrase} {value}?",
                        f"Count the {plural} whose {t_phrase} is {value}.",
                    ]
                ),
                ctx(t),
                f"SELECT COUNT(*) FROM {table} WHERE {t} = {quote(value)}",
            )
        value = rng.choice(t_values)
        if other_texts:
            o = other_texts[0]
            add(
                f"List the {text_cols[o][0]} of all {plural} whose {t_phrase} is not {value}.",
                ctx(o, t),
                f"SELECT {o} FROM {table} WHERE {t} <> {quote(value)}",
            )
        add(
            rng.choice(
                [
                    f"How many different {t_phrase} values are there among the {plural}?",
                    f"Count the distinct {t_phrase} values of {plural}.",
                ]
            ),
            ctx(t),
            f"SELECT COUNT(DISTINCT {t}) FROM {table}",
        )
        add(f"List the distinct {t_phrase} values of all {plural}.", ctx(t), f"SELECT DISTINCT {t} FROM {table}")
        add(
            rng.choice(
                [
                    f"How many {plural} are there for each {t_phrase}?",
                    f"Show each {t_phrase} and the number of {plural} with it.",
                ]
            ),
            ctx(t),
            f"SELECT {t}, COUNT(*) FROM {table} GROUP BY {t}",
        )
        add(
            rng.choice(
                [
                    f"Which {t_phrase} is the most common among {plural}?",
                    f"What is the most frequent {t_phrase} of the {plural}?",
                ]
            ),
            ctx(t),
            f"SELECT {t} FROM {table} GROUP BY {t} ORDER BY COUNT(*) DESC LIMIT 1",
        )
        k = rng.choice([2, 3, 5])
        add(
            f"Which {t_phrase} values are shared by at least {k} {plural}?",
            ctx(t),
            f"SELECT {t} FROM {table} GROUP BY {t} HAVING COUNT(*) >= {k}",
        )
    for n in nums:
        n_phrase, n_type, lo, hi = num_cols[n]
        aggregates = [("MAX", ["highest", "maximum", "largest"]), ("MIN", ["lowest", "minimum", "smallest"])]
        if summable(n, n_phrase):
            aggregates += [("AVG", ["average", "mean"]), ("SUM", ["total"])]
        for fn, words in aggregates:
            word = rng.choice(words)
            add(
                rng.choice(
                    [f"What is the {word} {n_phrase} of all {plural}?", f"Find the {word} {n_phrase} among {plural}."]
                ),
                ctx(n),
                f"SELECT {fn}({n}) FROM {table}",
            )
        add(
            f"What are the maximum and minimum {n_phrase} of the {plural}?",
            ctx(n),
            f"SELECT MAX({n}), MIN({n}) FROM {table}",
        )
        for t in texts[:2]:
            t_phrase, t_values = text_cols[t]
            value = rng.choice(t_values)
            choices = [("AVG", "average"), ("MAX", "highest"), ("MIN", "lowest"), ("SUM", "total")]
            fn, word = rng.choice(choices if summable(n, n_phrase) else choices[1:3])
            add(
                f"What is the {word} {n_phrase} of {plural} whose {t_phrase} is {value}?",
                ctx(n, t),
                f"SELECT {fn}({n}) FROM {table} WHERE {t} = {quote(value)}",
            )
            add(
                rng.choice(
                    [
                        f"Which {t_phrase} has the highest {n_phrase}?",
                        f"Give the {t_phrase} of the {singular} with the largest {n_phrase}.",
                    ]
                ),
                ctx(t, n),
                f"SELECT {t} FROM {table} ORDER BY {n} DESC LIMIT 1",
            )
            add(
                f"Give the {t_phrase} of the {singular} with the smallest {n_phrase}.",
                ctx(t, n),
                f"SELECT {t} FROM {table} ORDER BY {n} LIMIT 1",
            )
            limit = rng.choice([3, 5])
            add(
                f"List the {t_phrase} of the top {limit} {plural} by {n_phrase}.",
                ctx(t, n),
                f"SELECT {t} FROM {table} ORDER BY {n} DESC LIMIT {limit}",
            )
            add(
                f"List the {t_phrase} and {n_phrase} of all {plural}, ordered by {n_phrase}.",
                ctx(t, n),
                f"SELECT {t}, {n} FROM {table} ORDER BY {n}",
            )
            if summable(n, n_phrase) or n in ("age", "rating", "price", "unit_price", "gpa", "runtime"):
                add(
                    rng.choice(
                        [
                            f"What is the average {n_phrase} for each {t_phrase}?",
                            f"Show the average {n_phrase} of {plural} grouped by {t_phrase}.",
                        ]
                    ),
                    ctx(t, n),
                    f"SELECT {t}, AVG({n}) FROM {table} GROUP BY {t}",
                )
            for op, words in ((">", ["greater than", "more than", "above"]), ("<", ["less than", "below", "under"])):
                value = number_literal(rng, n_type, lo, hi)
                add(
                    rng.choice(
                        [
                            f"List the {t_phrase} of {plural} with {n_phrase} {rng.choice(words)} {value}.",
                            f"Which {plural} have a {n_phrase} {rng.choice(words)} {value}? Give their {t_phrase}.",
                        ]
                    ),
                    ctx(t, n),
                    f"SELECT {t} FROM {table} WHERE {n} {op} {value}",
                )
            value = number_literal(rng, n_type, lo, hi)
            add(
                f"How many {plural} have {n_phrase} at least {value}?",
                ctx(n),
                f"SELECT COUNT(*) FROM {table} WHERE {n} >= {value}",
            )
            a, b = sorted([number_literal(rng, n_type, lo, hi), number_literal(rng, n_type, lo, hi)])
            if a != b:
                add(
                    f"List the {t_phrase} of {plural} whose {n_phrase} is between {a} and {b}.",
                    ctx(t, n),
                    f"SELECT {t} FROM {table} WHERE {n} BETWEEN {a} AND {b}",
                )
            value, limit = rng.choice(t_values), number_literal(rng, n_type, lo, hi)
            others = [o for o in texts if o != t] or [t]
            o = rng.choice(others)
            add(
                f"Give the {text_cols[o][0]} of the {plural} whose {t_phrase} is {value} and whose {n_phrase} is above"
                f" {limit}?",
                ctx(o, t, n),
                f"SELECT {o} FROM {table} WHERE {t} = {quote(value)} AND {n} > {limit}",
            )
    add(
        rng.choice(
            [
                f"How many {plural} are there?",
                f"Count the number of {plural}.",
                f"What is the total number of {plural}?",
            ]
        ),
        schema_sql(table, [(texts[0], ctype("TEXT"))]),
        f"SELECT COUNT(*) FROM {table}",
    )
    return examples


def join_examples(rng):
    examples = []
    for child, (fk, parent, pk) in JOINS.items():
        c_single, c_plural, c_text, c_num = TABLES[child]
        p_single, p_plural, p_text, p_num = TABLES[parent]
        for p_col, (p_phrase, p_values) in list(p_text.items())[:2]:
            for c_col, (c_phrase, _) in list(c_text.items())[:2]:
                value = rng.choice(p_values)
                context = (
                    f"CREATE TABLE {child} ({c_col} VARCHAR, {fk} VARCHAR); "
                    f"CREATE TABLE {parent} ({pk} VARCHAR, {p_col} VARCHAR)"
                )
                add_q = rng.choice(
                    [
                        f"What are the {c_phrase} values of {c_plural} whose {p_single} has the {p_phrase} {value}?",
                        f"List the {c_phrase} of every {c_single} belonging to the {p_single} with {p_phrase} {value}.",
                    ]
                )
                examples.append(
                    {
                        "question": add_q,
                        "context": context,
                        "answer": (
                            f"SELECT T1.{c_col} FROM {child} AS T1 JOIN {parent} AS T2 ON T1.{fk} = T2.{pk} "
                            f"WHERE T2.{p_col} = {quote(value)}"
                        ),
                    }
                )
            context = f"CREATE TABLE {child} ({fk} VARCHAR); CREATE TABLE {parent} ({pk} VARCHAR, {p_col} VARCHAR)"
            examples.append(
                {
                    "question": f"Show the {p_phrase} of each {p_single} and the number of {c_plural} it has.",
                    "context": context,
                    "answer": (
                        f"SELECT T2.{p_col}, COUNT(*) FROM {child} AS T1 JOIN {parent} AS T2 "
                        f"ON T1.{fk} = T2.{pk} GROUP BY T2.{p_col}"
                    ),
                }
            )
            for n_col, (n_phrase, n_type, _, _) in list(c_num.items())[:2]:
                context = (
                    f"CREATE TABLE {child} ({n_col} {n_type}, {fk} VARCHAR); "
                    f"CREATE TABLE {parent} ({pk} VARCHAR, {p_col} VARCHAR)"
                )
                value = rng.choice(p_values)
                examples.append(
                    {
                        "question": (
                            f"What is the average {n_phrase} of {c_plural} in the {p_single} with {p_phrase} {value}?"
                        ),
                        "context": context,
                        "answer": (
                            f"SELECT AVG(T1.{n_col}) FROM {child} AS T1 JOIN {parent} AS T2 ON T1.{fk} = T2.{pk} "
                            f"WHERE T2.{p_col} = {quote(value)}"
                        ),
                    }
                )
            for n_col, (n_phrase, n_type, lo, hi) in list(p_num.items())[:1]:
                value = number_literal(rng, n_type, lo, hi)
                c_col = next(iter(c_text))
                context = (
                    f"CREATE TABLE {child} ({c_col} VARCHAR, {fk} VARCHAR); "
                    f"CREATE TABLE {parent} ({pk} VARCHAR, {n_col} {n_type})"
                )
                examples.append(
                    {
                        "question": (
                            f"List the {c_text[c_col][0]} of {c_plural} whose {p_single} has {n_phrase} greater than"
                            f" {value}."
                        ),
                        "context": context,
                        "answer": (
                            f"SELECT T1.{c_col} FROM {child} AS T1 JOIN {parent} AS T2 ON T1.{fk} = T2.{pk} "
                            f"WHERE T2.{n_col} > {value}"
                        ),
                    }
                )
    return examples


def check_examples(examples):
    """Execute every answer on its schema with rows inserted that contain the literals of the answer."""
    for example in examples:
        conn = sqlite3.connect(":memory:")
        conn.executescript(example["context"])
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
            for i in range(4):
                row = [i + 1 if "INT" in (c[2] or "") else f"v{i}" for c in columns]
                conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in columns)})", row)
        try:
            conn.execute(example["answer"]).fetchall()
        except sqlite3.Error as error:
            raise SystemExit(
                f"error: generated SQL does not run: {example['answer']!r} on {example['context']!r}: {error}"
            )


def split(rng, examples, n_train, n_test):
    """Shuffle, drop duplicate questions and cut train/test so that no question appears in both."""
    if isinstance(examples, tuple):
        # (pool, share) groups: a rare pattern (joins) gets a fixed share of both splits instead of its natural few %
        train, test = [], []
        for pool, share in examples:
            part = split(rng, pool, round(n_train * share), round(n_test * share))
            train, test = train + part[0], test + part[1]
        rng.shuffle(train)
        rng.shuffle(test)
        return train, test
    seen, unique = set(), []
    for example in examples:
        key = (example["question"].lower(), example["context"])
        if key not in seen:
            seen.add(key)
            unique.append(example)
    rng.shuffle(unique)
    if len(unique) < n_train + n_test:
        raise SystemExit(f"error: only {len(unique)} unique examples, need {n_train + n_test}")
    return unique[:n_train], unique[n_train : n_train + n_test]


def write_json(path, records):
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        json.dump(records, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def main():
    rng = random.Random(SEED)
    single = []
    for table, (singular, plural, text_cols, num_cols) in TABLES.items():
        single += single_table_examples(rng, table, singular, plural, text_cols, num_cols)
    joins = join_examples(rng)
    stage2 = []
    for index, (singular, plural, text_cols, num_cols) in enumerate(STAGE2_TABLES):
        table = f"table_name_{rng.randint(10, 99)}{index}"
        stage2 += single_table_examples(rng, table, singular, plural, text_cols, num_cols, varchar_only=True)
    check_examples(single + joins + stage2)
    print(f"generated {len(single)} + {len(joins)} (joins) stage-1 and {len(stage2)} stage-2 candidates")
    train, test = split(rng, ((single, 0.85), (joins, 0.15)), 400, 60)
    train2, test2 = split(rng, stage2, 150, 30)
    for name, records in (("train", train), ("test", test), ("stage2_train", train2), ("stage2_test", test2)):
        write_json(HERE / f"{name}.json", records)
        print(f"wrote {len(records)} to {HERE / (name + '.json')}")


if __name__ == "__main__":
    main()
