"""Regenerate the tool-calling example data: OpenAI chat fine-tuning records with `tools` and `tool_calls`.

    python examples/tools/generate.py

Writes train.jsonl, validation.jsonl, test.jsonl and test_unseen_functions.jsonl next to this file (deterministic:
the same files on every run). 36 functions with JSON schemas in six domains; requests with and without arguments,
several calls in one turn and requests that need no call. Every record offers two tools (the ones to call plus
distractors from the same domain). Two held-out splits:
- test.jsonl: new requests (a phrasing reserved for the test, or new values) for the 30 functions seen in training;
- test_unseen_functions.jsonl: requests for 6 functions (one per domain) that never appear in training, not even as
  a distractor.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 14
TOOLS_PER_RECORD = 2
TRAIN_PER_FUNCTION = 8  # 30 seen functions -> 240 single calls (fewer where a function has few requests)
VALIDATION_PER_FUNCTION = 1
TEST_PER_FUNCTION = 2  # 1 from the phrasing reserved for the test, 1 from the training phrasings with new values
UNSEEN_PER_FUNCTION = 6
MULTI_CALLS = {"train": 40, "validation": 4, "test": 10, "test_unseen_functions": 6}

ROOMS = ["kitchen", "bedroom", "living room", "bathroom", "office", "garage", "hallway", "dining room"]
CITIES = ["Berlin", "Paris", "Tokyo", "Madrid", "Chicago", "Toronto", "Sydney", "Rome", "Lisbon", "Oslo", "Denver",
          "Cairo", "Seoul", "Dublin"]
DATES = ["tomorrow", "Friday", "next Monday", "June 3", "March 14", "Saturday", "today", "October 21"]
TIMES = ["7 am", "6:30 am", "9 pm", "noon", "8:15 am", "10 pm", "5:45 pm", "11 am"]
CONTACTS = ["Anna", "Ben", "Mom", "Dad", "Carlos", "Priya", "Emma", "Jonas", "Yuki", "Omar"]
TEXTS = ["I'm running late", "see you at eight", "call me back", "happy birthday", "dinner is ready",
         "the meeting moved to 3", "I landed safely", "can you pick up milk"]
TASKS = ["buy groceries", "call the dentist", "renew my passport", "water the plants", "pay the rent",
         "book a haircut", "return the library books", "clean the fridge"]
TICKERS = [("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Tesla", "TSLA"), ("Amazon", "AMZN"), ("Nvidia", "NVDA"),
           ("Google", "GOOGL"), ("Netflix", "NFLX")]
CURRENCIES = [("dollars", "USD"), ("euros", "EUR"), ("yen", "JPY"), ("pounds", "GBP"), ("Swiss francs", "CHF")]
AMOUNTS = [20, 50, 75, 120, 250, 300, 45.5, 1000, 12.99, 80]
MUSIC = ["jazz", "Taylor Swift", "lo-fi beats", "classical piano", "the Beatles", "80s rock", "Adele", "reggae"]
PODCASTS = ["The Daily", "Radiolab", "Hardcore History", "Planet Money", "Science Vs", "Freakonomics"]
STATIONS = ["BBC Radio 1", "Jazz FM", "KEXP", "Classic FM", "NPR News", "Radio Paradise"]
ITEMS = ["paper towels", "coffee beans", "AA batteries", "dish soap", "oat milk", "a phone charger", "printer paper"]
BILLERS = ["the electric company", "Comcast", "the water utility", "Verizon", "the gas company", "my landlord"]
SUBJECTS = ["the quarterly report", "vacation plans", "the invoice", "tomorrow's meeting", "the new schedule"]
EVENTS = ["team meeting", "dentist appointment", "lunch with Sara", "yoga class", "project review", "parent evening"]


def param(kind, description, values, default=None, optional=False, enum=None):
    """A parameter: JSON schema type and description, the values requests use ((said, value) pairs or plain values),
    and a default (optional parameters only)."""
    return {"type": kind, "description": description, "values": values, "default": default,
            "optional": optional or default is not None, "enum": enum}


# domain -> [(name, description, {parameter: param(...)}, [request phrasings; the last one is reserved for the test],
# held out: never in training)]. A phrasing is text, or (text, fixed arguments) when the words imply a value.
FUNCTIONS = {
    "home": [
        ("set_thermostat", "Set the heating to a temperature",
         {"temperature": param("number", "Degrees Celsius", [18, 19, 20, 21, 22, 23, 24, 19.5, 21.5]),
          "room": param("string", "Room name", ROOMS, default="living room")},
         ["Set the heating to {temperature} degrees", "I want it {temperature} degrees in the {room}",
          "Warm the {room} up to {temperature} degrees", "Make it {temperature} degrees in here",
          "Change the thermostat in the {room} to {temperature}", "Can you heat the {room} to {temperature} degrees?"],
         False),
        ("turn_on_lights", "Switch lights on in a room",
         {"room": param("string", "Room name", ROOMS),
          "brightness": param("integer", "Percent, 1-100", [10, 25, 40, 50, 60, 75, 80], default=100)},
         ["Turn on the lights in the {room}", "Lights on in the {room} at {brightness} percent",
          "Switch on the {room} lights", "Put the {room} lights on, {brightness}% brightness",
          "I need some light in the {room}", "Could you light up the {room} to {brightness} percent?"], False),
        ("turn_off_lights", "Switch lights off in a room", {"room": param("string", "Room name", ROOMS)},
         ["Turn off the lights in the {room}", "Switch off the {room} lights", "Lights off in the {room} please",
          "Kill the lights in the {room}", "It's too bright in the {room}, turn the lights off"], False),
        ("lock_door", "Lock a door",
         {"door": param("string", "Which door", [("front", "front"), ("back", "back"), ("garage", "garage")],
                        default="front", enum=["front", "back", "garage"])},
         ["Lock the {door} door", "Lock the door", "Make sure the {door} door is locked", "Please lock up",
          "Can you lock the {door} door for me?"], False),
        ("start_vacuum", "Start the robot vacuum", {},
         ["Start the vacuum", "Run the robot vacuum", "Vacuum the floors", "Time to clean the floors, start the robot",
          "Get the vacuum cleaner going"], False),
        ("close_blinds", "Close the window blinds in a room",
         {"room": param("string", "Room name", ROOMS),
          "position": param("integer", "Percent open, 0 = fully closed", [0, 20, 30, 50], default=0)},
         ["Close the blinds in the {room}", "Lower the {room} blinds to {position} percent",
          "Shut the blinds in the {room}", "Set the {room} blinds to {position}% open",
          "Pull the blinds down in the {room}"], True),
    ],
    "calendar": [
        ("create_event", "Add an event to the calendar",
         {"title": param("string", "Event title", EVENTS), "date": param("string", "Day", DATES),
          "time": param("string", "Start time", TIMES, optional=True)},
         ["Add {title} on {date} at {time}", "Put a {title} in my calendar for {date}",
          "Schedule {title} {date} at {time}", "Create an event called {title} on {date}",
          "Book {title} for {date}, {time}", "Please add {title} to my calendar on {date} at {time}"], False),
        ("set_alarm", "Set an alarm",
         {"time": param("string", "Alarm time", TIMES),
          "label": param("string", "Alarm name", ["work", "gym", "medicine", "flight"], optional=True)},
         ["Set an alarm for {time}", "Wake me up at {time}", "Alarm at {time} called {label}",
          "Set a {label} alarm for {time}", "I need to get up at {time}"], False),
        ("set_timer", "Start a countdown timer", {"minutes": param("integer", "Length in minutes",
                                                                   [2, 3, 5, 10, 15, 20, 25, 30, 45, 90])},
         ["Set a timer for {minutes} minutes", "Start a {minutes} minute timer", "Timer, {minutes} minutes",
          "Count down {minutes} minutes", "Remind me when {minutes} minutes are up"], False),
        ("add_todo", "Add a task to the to-do list",
         {"task": param("string", "The task", TASKS),
          "priority": param("string", "low, normal or high", ["low", "high", "normal"], default="normal",
                            enum=["low", "normal", "high"])},
         ["Add {task} to my to-do list", "Put {task} on my list with {priority} priority",
          "Remember that I need to {task}", "New task: {task}, priority {priority}",
          "Add a {priority} priority task to {task}"], False),
        ("list_events", "List the calendar events of a day",
         {"date": param("string", "Day", DATES, default="today")},
         ["What's on my calendar {date}?", "What do I have today?", "Show my schedule for {date}",
          "List my events {date}", "Am I busy {date}?"], False),
        ("create_reminder", "Remind the user of something after some minutes",
         {"text": param("string", "What to remember", TASKS),
          "minutes_from_now": param("integer", "Minutes from now", [5, 10, 15, 30, 45, 60])},
         ["Remind me to {text} in {minutes_from_now} minutes", "In {minutes_from_now} minutes remind me to {text}",
          "Set a reminder to {text} {minutes_from_now} minutes from now",
          "Don't let me forget to {text}, remind me in {minutes_from_now} minutes"], True),
    ],
    "travel": [
        ("search_flights", "Find flights between two cities",
         {"origin": param("string", "Departure city", CITIES), "destination": param("string", "Arrival city", CITIES),
          "date": param("string", "Travel day", DATES)},
         ["Find flights from {origin} to {destination} on {date}", "I need a flight {origin} to {destination} {date}",
          "Search flights to {destination} from {origin} for {date}",
          "Any flights {date} from {origin} to {destination}?",
          "Look up flights leaving {origin} for {destination} on {date}"], False),
        ("book_hotel", "Book a hotel room",
         {"city": param("string", "City", CITIES), "nights": param("integer", "Number of nights", [2, 3, 4, 5, 7]),
          "guests": param("integer", "Number of guests", [2, 3, 4], default=1)},
         ["Book a hotel in {city} for {nights} nights", "I need a room in {city}, {nights} nights, {guests} guests",
          "Reserve a hotel in {city} for {guests} people for {nights} nights",
          "Get me a hotel for {nights} nights in {city}",
          "Find and book {nights} nights in {city} for {guests}"], False),
        ("get_weather", "Current weather for a city",
         {"city": param("string", "City", CITIES),
          "unit": param("string", "celsius or fahrenheit", ["celsius", "fahrenheit"], default="celsius",
                        enum=["celsius", "fahrenheit"])},
         ["What's the weather in {city}?", "How warm is it in {city} in {unit}?", "Weather for {city} please",
          "Is it raining in {city}?", "Tell me the temperature in {city} in {unit}"], False),
        ("call_taxi", "Order a taxi to a pickup address",
         {"pickup": param("string", "Pickup address", ["the airport", "Main Street 5", "the train station", "my office",
                                                       "home", "the hotel"])},
         ["Call a taxi to {pickup}", "I need a cab at {pickup}", "Get me a taxi from {pickup}",
          "Send a car to {pickup}", "Order a taxi, pickup at {pickup}"], False),
        ("convert_currency", "Convert an amount between currencies",
         {"amount": param("number", "Amount", AMOUNTS), "from_currency": param("string", "ISO code", CURRENCIES),
          "to_currency": param("string", "ISO code", CURRENCIES)},
         ["Convert {amount} {from_currency} to {to_currency}", "How much is {amount} {from_currency} in {to_currency}?",
          "What are {amount} {from_currency} worth in {to_currency}?",
          "Change {amount} {from_currency} into {to_currency}",
          "{amount} {from_currency} to {to_currency} please"], False),
        ("get_directions", "Route to a destination",
         {"destination": param("string", "Where to", ["the airport", "the museum", "Central Park", "the train station",
                                                      "the nearest pharmacy", "the stadium"]),
          "mode": param("string", "driving, walking or transit", ["driving", "walking", "transit"], default="driving",
                        enum=["driving", "walking", "transit"])},
         ["How do I get to {destination}?", "Directions to {destination} by {mode}",
          "Show me the {mode} route to {destination}", "Navigate to {destination}",
          "What's the way to {destination}, {mode}?"], True),
    ],
    "money": [
        ("get_stock_price", "Latest price of a stock", {"symbol": param("string", "Ticker symbol", TICKERS)},
         ["What's the {symbol} stock price?", "How is {symbol} stock doing?", "Price of {symbol} shares",
          "Check {symbol} stock for me", "What is {symbol} trading at?"], False),
        ("check_balance", "Balance of a bank account",
         {"account": param("string", "checking or savings", ["checking", "savings"], default="checking",
                           enum=["checking", "savings"])},
         ["What's my balance?", "How much is in my {account} account?", "Check my {account} balance",
          "Show me the balance of my {account} account", "How much money do I have?"], False),
        ("transfer_money", "Send money to an account",
         {"amount": param("number", "Amount in dollars", AMOUNTS),
          "to_account": param("string", "Recipient", CONTACTS + ["savings"])},
         ["Transfer {amount} dollars to {to_account}", "Send {to_account} {amount} dollars",
          "Move {amount} to {to_account}", "Pay {to_account} {amount} dollars",
          "Wire {amount} dollars to {to_account}"],
         False),
        ("add_to_cart", "Add an item to the shopping cart",
         {"item": param("string", "Product", ITEMS),
          "quantity": param("integer", "How many", [2, 3, 4, 5, 6], default=1)},
         ["Add {item} to my cart", "Put {quantity} {item} in the basket", "Order {quantity} packs of {item}",
          "I need {item}, add it to the cart", "Add {quantity} of {item} to my shopping cart"], False),
        ("track_order", "Where an order is",
         {"order_id": param("string", "Order number", ["A1234", "B7781", "C3090", "D4512", "E6620", "F1009"])},
         ["Where is order {order_id}?", "Track my order {order_id}", "What's the status of order {order_id}?",
          "Has order {order_id} shipped?", "When will order {order_id} arrive?"], False),
        ("pay_bill", "Pay a bill",
         {"biller": param("string", "Who to pay", BILLERS), "amount": param("number", "Amount in dollars", AMOUNTS)},
         ["Pay {amount} dollars to {biller}", "Pay my bill to {biller}, {amount} dollars",
          "Settle {biller} for {amount}", "Send {amount} to {biller} for the bill"], True),
    ],
    "media": [
        ("play_music", "Play music",
         {"query": param("string", "Artist, genre or song", MUSIC),
          "shuffle": param("boolean", "Shuffle", [True, False], default=False)},
         ["Play {query}", "Put on some {query}", ("Shuffle some {query}", {"shuffle": True}),
          "I want to listen to {query}", ("Play {query} on shuffle", {"shuffle": True}), "Can you play {query}?"],
         False),
        ("pause_music", "Pause playback", {},
         ["Pause the music", "Pause", "Stop the song for a moment", "Hold the music", "Pause playback please"], False),
        ("set_volume", "Set the volume", {"level": param("integer", "Percent, 0-100", [10, 20, 30, 40, 50, 70, 80])},
         ["Set the volume to {level}", "Volume {level} percent", "Turn it to {level}", "Change the volume to {level}%",
          "Make the volume {level}"], False),
        ("play_podcast", "Play the latest episode of a podcast",
         {"name": param("string", "Podcast name", PODCASTS)},
         ["Play {name}", "Put on the latest {name} episode", "I want to hear {name}",
          "Start the podcast {name}", "Play the newest episode of {name}"], False),
        ("skip_track", "Skip to the next track", {},
         ["Skip this song", "Next track", "Skip", "Play the next song", "I don't like this one, skip it"], False),
        ("play_radio", "Tune in to a radio station", {"station": param("string", "Station name", STATIONS)},
         ["Tune in to {station}", "Play the radio station {station}", "Put {station} on",
          "I want to listen to {station}",
          "Switch to {station} radio"], True),
    ],
    "messages": [
        ("send_message", "Send a text message",
         {"contact": param("string", "Recipient", CONTACTS), "text": param("string", "Message", TEXTS)},
         ["Text {contact} {text}", "Send {contact} a message saying {text}", "Tell {contact} that {text}",
          "Message {contact}: {text}", "Write to {contact}: {text}", "Let {contact} know {text}"], False),
        ("call_contact", "Phone a contact",
         {"contact": param("string", "Who to call", CONTACTS),
          "speaker": param("boolean", "Use the speakerphone", [True, False], default=False)},
         ["Call {contact}", ("Call {contact} on speaker", {"speaker": True}), "Phone {contact}",
          "Ring {contact} please", ("Put {contact} on speakerphone", {"speaker": True}), "Give {contact} a call"],
         False),
        ("send_email", "Send an email",
         {"to": param("string", "Recipient", CONTACTS), "subject": param("string", "Subject", SUBJECTS),
          "body": param("string", "Text", TEXTS, optional=True)},
         ["Email {to} about {subject}", "Send an email to {to} with the subject {subject}",
          "Email {to} about {subject} and say {body}", "Write {to} an email about {subject}",
          "Send {to} a mail, subject {subject}, saying {body}"], False),
        ("read_messages", "Read unread messages, optionally from one contact",
         {"contact": param("string", "Sender", CONTACTS, optional=True)},
         ["Read my messages", "Any new messages from {contact}?", "Read me the texts from {contact}",
          "What are my new messages?", "Did {contact} write to me?"], False),
        ("get_battery_level", "Battery level of the phone", {},
         ["How much battery do I have?", "Battery level?", "Check my battery", "Is my phone charged?",
          "What's the battery at?"], False),
        ("share_location", "Share the live location with a contact",
         {"contact": param("string", "Who sees it", CONTACTS),
          "minutes": param("integer", "For how long", [15, 30, 60, 120], default=60)},
         ["Share my location with {contact}", "Send {contact} my live location for {minutes} minutes",
          "Let {contact} see where I am", "Share where I am with {contact} for {minutes} minutes"], True),
    ],
}

# Requests no tool serves: the assistant answers in words, with no call.
NO_CALL = [
    ("Thanks, that's all for now.", "You're welcome! Let me know if you need anything else."),
    ("What can you do?", "I can use the tools I have been given. Just tell me what you need."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    ("Good morning!", "Good morning! How can I help you today?"),
    ("How are you?", "I'm doing well, thanks for asking. What can I do for you?"),
    ("What is 7 times 8?", "7 times 8 is 56."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("What's the capital of Italy?", "The capital of Italy is Rome."),
    ("Never mind.", "No problem."),
    ("Recommend a good book.", "You might enjoy The Hobbit by J. R. R. Tolkien."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("Order me a pizza.", "Sorry, none of my tools can order food."),
    ("Book a table at an Italian restaurant.", "Sorry, none of my tools can book restaurants."),
    ("What does CPU stand for?", "CPU stands for central processing unit."),
    ("Spell 'necessary'.", "N-E-C-E-S-S-A-R-Y."),
    ("Hello there", "Hello! What can I do for you?"),
    ("How far is the moon?", "The moon is about 384,000 kilometres from Earth."),
    ("Goodbye!", "Goodbye! Have a great day."),
    ("What's 15 plus 27?", "15 plus 27 is 42."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    ("Can you fix my bike?", "Sorry, I can't do that with the tools I have."),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("Thank you so much!", "Happy to help!"),
]
NO_CALL_TEST = {"Who painted the Mona Lisa?", "Can you fix my bike?", "What is the boiling point of water?",
                "Thank you so much!", "What's 15 plus 27?", "Goodbye!"}
NO_CALL_COUNTS = {"train": 36, "validation": 3, "test": 8, "test_unseen_functions": 4}


def schema(name, description, parameters):
    properties, required = {}, []
    for key, spec in parameters.items():
        # every row repeats the schemas: parameter names say enough, except for numbers, whose unit they lack
        prop = {"type": spec["type"], "description": spec["description"]} if spec["type"] in ("integer", "number") \
            else {"type": spec["type"]}
        if spec["enum"]:
            prop["enum"] = spec["enum"]
        if spec["default"] is not None:
            prop["default"] = spec["default"]
        properties[key] = prop
        if not spec["optional"]:
            required.append(key)
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


def fill(rng, function, phrasing):
    """One request for `function` in `phrasing` -> (text, arguments)."""
    name, _, parameters, _, _ = function
    text, fixed = phrasing if isinstance(phrasing, tuple) else (phrasing, {})
    arguments = dict(fixed)
    used = set()
    for key, spec in parameters.items():
        if "{" + key + "}" not in text:
            continue
        choices = [v for v in spec["values"] if (v[1] if isinstance(v, tuple) else v) not in used]
        said, value = (lambda v: v if isinstance(v, tuple) else (str(v), v))(rng.choice(choices))
        used.add(value)  # origin != destination, from_currency != to_currency
        text = text.replace("{" + key + "}", said)
        arguments[key] = value
    return text[0].upper() + text[1:], arguments


def call(name, arguments, number):
    return {"id": f"call_{number}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def offered_tools(rng, needed, pool):
    """The needed functions plus distractors from their domain (then from the rest of the pool), shuffled."""
    domain = [f for f in pool if f[0] not in needed and DOMAIN[f[0]] in {DOMAIN[n] for n in needed}]
    others = [f for f in pool if f[0] not in needed and f not in domain]
    rng.shuffle(domain)
    rng.shuffle(others)
    chosen = [BY_NAME[n] for n in needed] + (domain + others)[: max(TOOLS_PER_RECORD - len(needed), 0)]
    rng.shuffle(chosen)
    return [schema(f[0], f[1], f[2]) for f in chosen]


def record(rng, requests, pool):
    """requests: [(function, text, arguments)] -> one OpenAI record asking for all of them in one turn."""
    text = requests[0][1]
    for _, more, _ in requests[1:]:
        text = f"{text.rstrip('?.')} and {more[0].lower() + more[1:]}"
    calls = [call(f[0], arguments, n + 1) for n, (f, _, arguments) in enumerate(requests)]
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "tool_calls": calls}],
            "tools": offered_tools(rng, [f[0] for f, _, _ in requests], pool)}


DOMAIN = {f[0]: domain for domain, functions in FUNCTIONS.items() for f in functions}
BY_NAME = {f[0]: f for functions in FUNCTIONS.values() for f in functions}


def sample(rng, function, phrasings, taken, tries=200):
    """A request for `function` whose text is not in `taken` (so no request repeats across splits)."""
    for _ in range(tries):
        text, arguments = fill(rng, function, rng.choice(phrasings))
        if text not in taken:
            taken.add(text)
            return function, text, arguments
    return None


def main():
    rng = random.Random(SEED)
    seen = [f for functions in FUNCTIONS.values() for f in functions if not f[4]]
    unseen = [f for functions in FUNCTIONS.values() for f in functions if f[4]]
    splits = {name: [] for name in MULTI_CALLS}
    taken = set()
    # the test's own phrasing first, so that training never takes its texts
    for function in seen:
        for _ in range(TEST_PER_FUNCTION - 1):
            if request := sample(rng, function, function[3][-1:], taken):
                splits["test"].append(record(rng, [request], seen))
    for function in seen:
        for split, count in (("train", TRAIN_PER_FUNCTION), ("validation", VALIDATION_PER_FUNCTION), ("test", 1)):
            for _ in range(count):
                if request := sample(rng, function, function[3][:-1], taken):
                    splits[split].append(record(rng, [request], seen))
    for function in unseen:
        for _ in range(UNSEEN_PER_FUNCTION):
            if request := sample(rng, function, function[3], taken):
                splits["test_unseen_functions"].append(record(rng, [request], seen + unseen))
    for split, count in MULTI_CALLS.items():
        for _ in range(count):
            if split == "test_unseen_functions":  # one new function and one seen function
                first, second = rng.choice(unseen), rng.choice(seen)
            else:
                first, second = rng.sample(seen, 2)
            phrasings = (lambda f: f[3][-1:] if split == "test" else f[3] if f[4] else f[3][:-1])
            requests = [sample(rng, f, phrasings(f), taken) for f in (first, second)]
            if all(requests):
                pool = seen + unseen if split == "test_unseen_functions" else seen
                splits[split].append(record(rng, requests, pool))
    no_call_test = [pair for pair in NO_CALL if pair[0] in NO_CALL_TEST]
    no_call_train = [pair for pair in NO_CALL if pair[0] not in NO_CALL_TEST]
    for split, count in NO_CALL_COUNTS.items():
        pairs = no_call_train if split in ("train", "validation") else no_call_test
        pool = seen + unseen if split == "test_unseen_functions" else seen
        for index in range(count):
            question, answer = pairs[index % len(pairs)]
            tools = [schema(f[0], f[1], f[2]) for f in rng.sample(pool, TOOLS_PER_RECORD)]
            splits[split].append({"messages": [{"role": "user", "content": question},
                                               {"role": "assistant", "content": answer}], "tools": tools})
    for split, records in splits.items():
        rng.shuffle(records)
        path = HERE / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        calls = sum(len(r["messages"][-1].get("tool_calls", [])) for r in records)
        print(f"{path.name}: {len(records)} records, {calls} calls")


if __name__ == "__main__":
    main()
