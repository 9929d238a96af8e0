"""Regenerate the general reference set: varied instructions with good answers, written by us, as chat messages.

    python examples/general/generate.py

Writes next to this file `test.jsonl` (the reference set that `eval.py --general_eval` and `sft.py
--general_eval_dataset` measure; no recipe trains on it) and `train.jsonl` (different items of the same kinds, for
mixing general data into a recipe), and appends the single-turn items of train.jsonl to examples/instruct/train.json
(after its own records, replacing any earlier copy). Each line is {"messages": [...], "category": ...,
"language": ...}. Hand-written items are split between the two files by a fixed hash; generated items (arithmetic,
conversions, lists) are drawn with different seeds, and every number in an answer is computed here, not typed.
"""

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The instruction recipe mixes in train.jsonl: a share of general data keeps it from forgetting (see README.md).
INSTRUCT_TRAIN = HERE.parent / "instruct" / "train.json"
TEST_SHARE = 0.7  # of the hand-written items; the reference set needs most of them

# ------------------------------------------------------------------------------------- hand-written: explanations
EXPLAIN = [
    ("Why is the sky blue during the day?",
     "Sunlight contains all colours. When it passes through the air, the tiny gas molecules scatter short "
     "wavelengths, such as blue, much more strongly than long ones, such as red. This scattered blue light reaches "
     "our eyes from every direction, so the whole sky looks blue. At sunset the light travels through more air, most "
     "of the blue is scattered away before it reaches us, and the sky turns orange and red."),
    ("How does a refrigerator keep food cold?",
     "A refrigerator moves heat from the inside to the outside. A liquid called a refrigerant evaporates in coils "
     "inside the fridge, and evaporating absorbs heat from the air around the food. A compressor then squeezes the "
     "gas, which makes it hot, and pumps it through coils at the back, where it releases that heat into the room "
     "and turns back into a liquid. The cycle repeats as long as the fridge is running."),
    ("What is photosynthesis?",
     "Photosynthesis is the process plants, algae and some bacteria use to make food from light. They take in carbon "
     "dioxide from the air and water from the soil, and use the energy of sunlight, captured by the green pigment "
     "chlorophyll, to turn them into glucose. Oxygen is released as a by-product, which is why plants are so "
     "important for the air we breathe."),
    ("Explain what inflation is in simple terms.",
     "Inflation is the general rise of prices over time. When inflation is 3% a year, something that costs $100 "
     "today costs about $103 a year later, so the same amount of money buys a little less. Some inflation is normal "
     "in a growing economy, but high inflation makes saving and planning hard, which is why central banks try to "
     "keep it low and stable."),
    ("How do vaccines protect people from disease?",
     "A vaccine shows the immune system a harmless version or piece of a germ, such as a weakened virus or one of its "
     "proteins. The body responds by making antibodies and memory cells that recognise it. If the real germ arrives "
     "later, the immune system remembers it and fights it off quickly, often before the person gets seriously ill."),
    ("What causes the seasons on Earth?",
     "The seasons are caused by the tilt of Earth's axis, about 23.5 degrees. As Earth orbits the Sun, one hemisphere "
     "leans towards the Sun for part of the year and gets more direct sunlight and longer days, which is summer "
     "there. Half a year later the same hemisphere leans away and has winter. The distance to the Sun changes only a "
     "little and is not the cause."),
    ("What does a computer's CPU do?",
     "The CPU, or central processing unit, carries out the instructions of programs. It fetches an instruction from "
     "memory, works out what it means, performs it (for example adding two numbers or comparing values) and moves on "
     "to the next one, billions of times per second. Everything a computer does, from showing a web page to playing "
     "music, is broken down into these small steps."),
    ("Why do we have leap years?",
     "Earth takes about 365.24 days to go around the Sun, not exactly 365. If every year had 365 days, the calendar "
     "would drift by about one day every four years, and the seasons would slowly move through the months. Adding "
     "February 29 almost every four years keeps the calendar in step with the seasons."),
    ("How does a bicycle stay upright while it is moving?",
     "A moving bicycle stays upright mostly because the rider keeps steering it under the centre of mass. When the "
     "bike starts to lean, the front wheel turns slightly in the same direction, which brings the wheels back under "
     "the rider. The shape of the fork helps the wheel steer itself this way, which is why a bicycle is easy to "
     "balance at speed and hard to balance when it is almost stopped."),
    ("What is the difference between weather and climate?",
     "Weather is what the atmosphere is doing at a particular time and place: today's rain, tomorrow's temperature, "
     "this afternoon's wind. Climate is the average pattern of weather in a region over many years, usually thirty "
     "or more. A single cold week says little about the climate, while a steady change in average temperatures over "
     "decades does."),
    ("Explain what a budget is and why it helps.",
     "A budget is a plan for how you will use your money over a period, usually a month. You list what you expect to "
     "earn and decide in advance how much goes to rent, food, transport, savings and other things. It helps because "
     "you can see where your money goes, avoid spending more than you earn and set money aside for goals or "
     "emergencies."),
    ("How do plants know which way to grow?",
     "Plants sense light and gravity. Shoots grow towards light because a hormone called auxin collects on the shaded "
     "side of the stem and makes those cells grow longer, bending the stem towards the light. Roots respond to "
     "gravity instead: special cells detect which way is down, and the root grows in that direction to find water "
     "and anchor the plant."),
    ("What is an algorithm?",
     "An algorithm is a precise list of steps for solving a problem or completing a task. A recipe for baking bread "
     "is an everyday example: it says what to do and in what order. In computing, algorithms describe how to sort a "
     "list, find the shortest route on a map or search for a word in a document, and a good algorithm gets the right "
     "answer with as little work as possible."),
    ("Why does ice float on water?",
     "Ice floats because it is less dense than liquid water. When water freezes, its molecules arrange themselves in "
     "an open, hexagonal pattern held together by hydrogen bonds, which takes up about 9% more space than the liquid. "
     "The same mass in a larger volume means lower density, so ice rises to the top. This is why lakes freeze from "
     "the surface down."),
    ("What is the purpose of sleep?",
     "Sleep lets the body and brain recover. During sleep the body repairs tissues and regulates hormones, and the "
     "brain sorts and stores memories from the day and clears away waste products. People who regularly sleep too "
     "little find it harder to concentrate, get ill more easily and are more likely to have accidents."),
    ("How does compound interest work?",
     "With compound interest you earn interest not only on the money you put in but also on the interest already "
     "added. For example, $1,000 at 5% a year grows to $1,050 after one year; in the second year the 5% is paid on "
     "$1,050, giving $1,102.50. Over many years this snowball effect makes savings grow much faster than simple "
     "interest would."),
    ("What is the greenhouse effect?",
     "The greenhouse effect is the warming of Earth's surface by gases in the atmosphere. Sunlight reaches the ground "
     "and warms it, and the ground gives off heat as infrared radiation. Gases such as carbon dioxide, methane and "
     "water vapour absorb part of that heat and send some of it back down, keeping the planet warmer than it would "
     "otherwise be. Adding more of these gases strengthens the effect and raises global temperatures."),
    ("Explain what a noun, a verb and an adjective are.",
     "A noun names a person, place, thing or idea, such as 'teacher', 'city' or 'happiness'. A verb describes an "
     "action or a state, such as 'run', 'think' or 'is'. An adjective describes a noun, telling us more about it, "
     "such as 'tall', 'blue' or 'quiet'. In the sentence 'The small dog barked', 'dog' is the noun, 'barked' the "
     "verb and 'small' the adjective."),
    ("How do tides happen?",
     "Tides are caused mainly by the Moon's gravity. The Moon pulls slightly harder on the side of Earth facing it, "
     "so the ocean there bulges towards the Moon; on the opposite side a second bulge forms because Earth itself is "
     "pulled away from the water. As Earth turns, a coast passes through both bulges, so most places get two high "
     "tides and two low tides each day. The Sun adds a smaller effect of its own."),
    ("What is the role of the heart in the human body?",
     "The heart is a muscle that pumps blood around the body. Its right side sends blood to the lungs to pick up "
     "oxygen and release carbon dioxide, and its left side pumps the oxygen-rich blood through the arteries to every "
     "organ and tissue. A healthy adult heart beats about 60 to 100 times a minute at rest."),
    ("Why is it important to back up your files?",
     "Files can be lost in many ways: a hard drive fails, a laptop is stolen, a file is deleted by mistake or "
     "ransomware encrypts it. A backup is a second copy kept somewhere else, such as an external drive or a cloud "
     "service, so you can restore your work when the original is gone. A common rule is to keep three copies, on two "
     "kinds of storage, with one copy off site."),
    ("What is the difference between a virus and a bacterium?",
     "Bacteria are single-celled living organisms that can grow and reproduce on their own; many are harmless or even "
     "useful, and infections they cause can often be treated with antibiotics. Viruses are much smaller and are not "
     "cells: they can only multiply inside the cells of another organism. Antibiotics do not work against viruses, "
     "which is why colds and flu are treated with rest, antiviral drugs or prevented with vaccines."),
    ("How does a search engine find web pages?",
     "A search engine uses programs called crawlers that follow links from page to page and download what they find. "
     "The text of each page is stored in a huge index, much like the index at the back of a book, that records which "
     "words appear on which pages. When you search, the engine looks up your words in the index and ranks the "
     "matching pages by how relevant and trustworthy they seem."),
    ("What is recycling and why does it matter?",
     "Recycling means collecting used materials such as paper, glass, metal and some plastics and processing them so "
     "they can be made into new products. It matters because it saves raw materials and energy, reduces the amount of "
     "waste sent to landfills and incinerators, and lowers pollution. Recycling works best together with using less "
     "and reusing what we can."),
]

# ------------------------------------------------------------------------------------- hand-written: advice lists
ADVICE = [
    ("Give three tips for getting better sleep.",
     "1. Go to bed and get up at the same time every day, including weekends.\n"
     "2. Keep screens out of the last hour before bed and keep the bedroom dark, quiet and cool.\n"
     "3. Avoid caffeine in the afternoon and heavy meals late in the evening."),
    ("List four ways to save money on groceries.",
     "1. Plan your meals for the week and shop with a list.\n2. Compare prices per kilogram or per litre, not per "
     "package.\n3. Buy fruit and vegetables that are in season.\n4. Cook larger portions and freeze the leftovers "
     "instead of buying ready meals."),
    ("How can I prepare for a job interview?",
     "Start by reading about the company: what it does, its products and its recent news. Re-read the job description "
     "and think of an example from your experience for each main requirement. Practise answering common questions "
     "out loud, such as why you want the job and what your strengths are, and prepare two or three questions of your "
     "own. On the day, arrive a few minutes early and bring a copy of your CV."),
    ("Suggest five ways to reduce stress at work.",
     "1. Break large tasks into smaller steps and tackle them one at a time.\n2. Take short breaks away from your "
     "desk every hour or two.\n3. Write a to-do list at the end of each day so you can switch off in the evening.\n4. "
     "Say no, politely, to requests you cannot take on.\n5. Talk to your manager early when the workload is too high."),
    ("Give me some tips for learning a new language.",
     "Practise a little every day rather than a lot once a week; fifteen minutes of daily practice builds habits. "
     "Learn the most common words first and use them in short sentences straight away. Listen to podcasts, music or "
     "films in the language to get used to its sound, and try to speak with native speakers, even if you make "
     "mistakes. Mistakes are a normal part of learning."),
    ("What should I pack for a weekend hiking trip?",
     "Pack sturdy, broken-in boots, layers of clothing including a waterproof jacket, and a warm hat. Bring enough "
     "water and easy food such as nuts and sandwiches, a map or a charged phone with offline maps, a small first-aid "
     "kit, sunscreen and a headlamp. If you stay overnight, add a sleeping bag and a tent or check that your hut is "
     "booked."),
    ("Give three tips for writing a clear email.",
     "1. Put the main point or request in the first two sentences.\n2. Use a specific subject line, such as "
     "'Budget approval needed by Friday'.\n3. Keep paragraphs short and end with a clear next step."),
    ("How can I make my home more energy efficient?",
     "Switch to LED bulbs and turn off devices at the plug when you are not using them. Seal gaps around windows and "
     "doors, and add insulation to the loft if it has little. Lower the heating by one degree, which saves a "
     "noticeable share of the bill, and wash clothes at lower temperatures. When appliances need replacing, choose "
     "models with a good energy rating."),
    ("List some healthy snacks for children.",
     "Good choices are apple slices with peanut butter, carrot and cucumber sticks with hummus, plain yogurt with "
     "berries, a handful of unsalted nuts (for older children), cheese cubes with whole-grain crackers and homemade "
     "popcorn without much salt or sugar."),
    ("What are some good habits for studying?",
     "Study in short, focused sessions of about 25 to 45 minutes with breaks in between. Test yourself instead of only "
     "re-reading notes, for example with flashcards or practice questions. Spread revision over several days rather "
     "than cramming the night before, keep your phone in another room, and explain the material in your own words to "
     "check that you understand it."),
    ("Give four tips for staying safe online.",
     "1. Use a different strong password for every account, kept in a password manager.\n2. Turn on two-factor "
     "authentication wherever it is offered.\n3. Do not click links or open attachments in unexpected messages.\n4. "
     "Keep your operating system, browser and apps up to date."),
    ("How can I become a better listener?",
     "Give the speaker your full attention: put your phone away and make eye contact. Let them finish before you "
     "answer, and resist planning your reply while they are still talking. Ask follow-up questions and briefly "
     "repeat what you heard in your own words, so they know you understood."),
    ("Suggest three activities for a rainy afternoon with friends.",
     "1. Hold a board game or card game tournament.\n2. Cook or bake something together, such as homemade pizza.\n3. "
     "Pick a theme and have a film marathon with snacks."),
    ("What can I do to keep my houseplants healthy?",
     "Check how much light each plant needs and place it accordingly; most houseplants like bright, indirect light. "
     "Water when the top few centimetres of soil are dry rather than on a fixed schedule, and make sure pots have "
     "drainage holes. Feed them lightly during spring and summer, wipe dust off the leaves and repot when roots grow "
     "out of the bottom."),
    ("Give some advice for someone starting to run.",
     "Start slowly: alternate one minute of running with two minutes of walking and build up over several weeks. Run "
     "at a pace at which you can still talk. Wear comfortable shoes that fit well, rest at least one day between runs "
     "at first, and increase your weekly distance by no more than about ten percent at a time."),
    ("How do I organise a small meeting well?",
     "Decide what the meeting must achieve and invite only the people needed for it. Send a short agenda in advance "
     "with the topics and who leads each one. Start and end on time, keep the discussion on the agenda, and finish by "
     "agreeing who does what by when. Send a brief summary of the decisions afterwards."),
]

# ------------------------------------------------------------------------------------- hand-written: comparisons
COMPARE = [
    ("What is the difference between a lake and a sea?",
     "A lake is a body of water surrounded by land, and most lakes hold fresh water. A sea is a large body of salt "
     "water that is usually connected to an ocean, often partly enclosed by land. Some very large salt lakes, such as "
     "the Caspian Sea, are called seas even though they have no link to the ocean."),
    ("Explain the difference between RAM and storage in a computer.",
     "RAM is the computer's short-term working memory: it holds the programs and data in use right now, is very fast "
     "and is emptied when the computer turns off. Storage, such as an SSD or hard drive, keeps files and programs "
     "permanently, even without power, but is slower. More RAM lets you run more things at once; more storage lets "
     "you keep more files."),
    ("What is the difference between a simile and a metaphor?",
     "Both compare two different things. A simile makes the comparison openly with 'like' or 'as': 'Her voice was "
     "like honey.' A metaphor says one thing is the other: 'Her voice was honey.' Metaphors tend to sound stronger, "
     "similes more explicit."),
    ("How is a crocodile different from an alligator?",
     "Alligators have a wide, U-shaped snout, while crocodiles have a narrower, V-shaped one. When a crocodile closes "
     "its mouth, the large fourth tooth of its lower jaw stays visible; an alligator's teeth are mostly hidden. "
     "Crocodiles also tolerate salt water better and live in more parts of the world, while alligators are found "
     "only in the United States and China."),
    ("What is the difference between renewable and non-renewable energy?",
     "Renewable energy comes from sources that are naturally replenished, such as sunlight, wind, flowing water and "
     "the heat of the Earth, so they do not run out on a human time scale. Non-renewable energy comes from sources "
     "that take millions of years to form, such as coal, oil and natural gas; once used they are gone, and burning "
     "them releases carbon dioxide."),
    ("Compare email and instant messaging for work communication.",
     "Email suits longer, more formal messages that need a record, such as decisions, documents or messages to "
     "people outside the company, and it lets readers answer when convenient. Instant messaging suits quick "
     "questions and short coordination within a team, where a fast answer matters more than a polished one. Many "
     "teams use chat for daily work and email for anything official."),
    ("What is the difference between speed and velocity?",
     "Speed tells you how fast something is moving, for example 60 kilometres per hour. Velocity tells you how fast "
     "and in which direction, for example 60 kilometres per hour heading north. A car driving around a roundabout at "
     "a steady speed has a changing velocity, because its direction keeps changing."),
    ("Explain the difference between 'affect' and 'effect'.",
     "In most sentences 'affect' is a verb meaning to influence something: 'The rain affected the match.' 'Effect' is "
     "usually a noun meaning a result: 'The rain had a big effect on the match.' A simple memory aid: affect is an "
     "action, effect is the end result."),
    ("What is the difference between a list and a tuple in Python?",
     "Both hold an ordered sequence of values. A list, written with square brackets like [1, 2, 3], is mutable: you "
     "can add, remove or change items. A tuple, written with parentheses like (1, 2, 3), is immutable: once created it "
     "cannot change. Tuples are useful for fixed groups of values and can be used as dictionary keys; lists are "
     "better when the contents will change."),
    ("How does a town differ from a city?",
     "The difference is mostly one of size and status. A city is usually larger and more densely populated, with more "
     "services, businesses and public institutions. In many countries 'city' is also an official title granted by "
     "the government, so a place can be quite small and still be a city, or large and still be called a town."),
]

# ------------------------------------------------------------------------------------- hand-written: writing tasks
WRITING = [
    ("Write a short thank-you note to a colleague who helped you finish a project.",
     "Hi Sam,\n\nThank you so much for your help with the project over the last two weeks. Your work on the data "
     "checks saved us days, and your calm suggestions kept the team on track when the deadline got close. I really "
     "appreciate it.\n\nBest wishes,\nAlex"),
    ("Write a two-sentence description of a quiet beach at sunrise.",
     "The sand was still cool and smooth, marked only by the footprints of a few seabirds. Soft waves rolled in "
     "under a sky turning from grey to pale gold as the sun lifted above the water."),
    ("Write a short product description for a reusable water bottle.",
     "Stay hydrated wherever you go with this stainless steel bottle. Its double walls keep drinks cold for 24 hours "
     "or hot for 12, the leak-proof lid fits easily in a bag, and it holds 750 ml. Reusable, easy to clean and free "
     "of plastic taste, it replaces hundreds of single-use bottles."),
    ("Write a polite message asking a neighbour to turn down their music in the evening.",
     "Hi, I hope you are well. I wanted to mention that the music from your flat has been quite loud in the evenings "
     "lately, and it carries into our bedroom. Would you mind keeping it a little lower after ten o'clock? Thanks a "
     "lot for understanding."),
    ("Write a haiku about autumn.",
     "Red leaves drift and fall\ncool wind hums through empty trees\nthe year breathes out slow"),
    ("Write a short invitation to a birthday picnic in the park.",
     "You are invited! Join us for Mia's birthday picnic on Saturday, June 14, from 12 to 4 pm at Riverside Park, "
     "near the big oak tree. We will bring cake and drinks; feel free to bring a blanket and a game. Please let us "
     "know by Wednesday if you can come."),
    ("Write an opening sentence for a mystery story.",
     "The letter arrived on a Tuesday, three years after the man who had written it was buried."),
    ("Write a brief out-of-office reply for an email account.",
     "Thank you for your email. I am out of the office from July 1 to July 12 with limited access to email. I will "
     "reply when I return. For urgent matters, please contact Dana Reyes at dana.reyes@example.com."),
    ("Write a short motivational message for a friend running their first marathon.",
     "You have put in months of early mornings and long runs, and tomorrow you get to enjoy the result. Start slow, "
     "trust your training and soak up the crowd. Whatever the clock says, crossing that finish line makes you a "
     "marathoner. I am so proud of you!"),
    ("Write a four-line poem about the city at night.",
     "The streetlights hum their amber tune,\nthe windows glow like scattered stars,\na late bus sighs beneath the "
     "moon,\nand quiet settles over cars."),
    ("Write a short review of a fictional café called The Blue Cup.",
     "The Blue Cup is a small, bright café with friendly staff and excellent coffee. The oat milk cappuccino was "
     "smooth and not too bitter, and the lemon cake was fresh and moist. Seating is limited at lunchtime, but it is "
     "a lovely place for a quiet morning with a book. Four stars out of five."),
    ("Write a tweet announcing a new community library opening.",
     "Big news! Our new community library opens this Saturday at 10 am on Elm Street. Come for free coffee, a "
     "storytime for kids and your new library card. See you there! #ReadLocal"),
]

# ------------------------------------------------------------------------------------- hand-written: code
CODE = [
    ("Write a Python function that returns the largest number in a list.",
     "```python\ndef largest(numbers):\n    if not numbers:\n        raise ValueError(\"the list is empty\")\n"
     "    biggest = numbers[0]\n    for n in numbers[1:]:\n        if n > biggest:\n            biggest = n\n"
     "    return biggest\n```\n\nThe function starts with the first element and replaces it whenever it finds a "
     "larger one. Python's built-in max(numbers) does the same in one call."),
    ("Write a Python function that checks whether a word is a palindrome.",
     "```python\ndef is_palindrome(word):\n    cleaned = word.lower()\n    return cleaned == cleaned[::-1]\n```\n\n"
     "It lowercases the word so that 'Level' counts, then compares it with its reverse; for example "
     "is_palindrome(\"Racecar\") returns True."),
    ("Write a Python function that counts the vowels in a string.",
     "```python\ndef count_vowels(text):\n    return sum(1 for char in text.lower() if char in \"aeiou\")\n```\n\n"
     "For example, count_vowels(\"Hello World\") returns 3."),
    ("Write a Python function to compute the factorial of a non-negative integer.",
     "```python\ndef factorial(n):\n    if n < 0:\n        raise ValueError(\"n must be non-negative\")\n"
     "    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result\n```\n\n"
     "factorial(5) returns 120, and factorial(0) returns 1 by definition."),
    ("Write a Python function that removes duplicate items from a list but keeps the original order.",
     "```python\ndef unique_in_order(items):\n    seen = set()\n    result = []\n    for item in items:\n"
     "        if item not in seen:\n            seen.add(item)\n            result.append(item)\n    return result\n"
     "```\n\nA set remembers what has appeared; for example unique_in_order([3, 1, 3, 2, 1]) returns [3, 1, 2]."),
    ("Write a SQL query that returns the names of all customers from Canada, sorted alphabetically.",
     "```sql\nSELECT name\nFROM customers\nWHERE country = 'Canada'\nORDER BY name;\n```\n\nThis assumes a "
     "customers table with name and country columns."),
    ("Explain what this Python code does: [x * x for x in range(5)]",
     "It is a list comprehension that squares each number from 0 to 4. range(5) produces 0, 1, 2, 3 and 4, and "
     "x * x squares each one, so the result is the list [0, 1, 4, 9, 16]."),
    ("Write a Python function that converts a temperature from Celsius to Fahrenheit.",
     "```python\ndef celsius_to_fahrenheit(celsius):\n    return celsius * 9 / 5 + 32\n```\n\nFor example, "
     "celsius_to_fahrenheit(100) returns 212.0."),
    ("What is a for loop used for in programming?",
     "A for loop repeats a block of code once for each item in a sequence or for a fixed number of times. It saves "
     "you from writing the same statement over and over. For example, in Python `for name in names: print(name)` "
     "prints every name in a list, one per line."),
    ("Write a JavaScript function that returns the sum of an array of numbers.",
     "```javascript\nfunction sum(numbers) {\n  return numbers.reduce((total, n) => total + n, 0);\n}\n```\n\n"
     "reduce walks through the array, adding each number to a running total that starts at 0; sum([1, 2, 3]) "
     "returns 6."),
]

# ------------------------------------------------------------------------------------- hand-written: other languages
LANGUAGES = [
    ("es", "¿Por qué es importante beber agua?",
     "El agua es esencial para el cuerpo: regula la temperatura, transporta nutrientes, ayuda a la digestión y "
     "elimina desechos a través de la orina. Aunque sea leve, la deshidratación puede causar cansancio, dolor de "
     "cabeza y dificultad para concentrarse. Por eso conviene beber agua a lo largo del día, sobre todo cuando hace "
     "calor o se hace ejercicio."),
    ("es", "Dame tres consejos para ahorrar energía en casa.",
     "1. Apaga las luces y los aparatos cuando no los uses.\n2. Cambia las bombillas antiguas por bombillas LED.\n"
     "3. Lava la ropa con agua fría y llena la lavadora antes de usarla."),
    ("es", "Explica qué es un volcán.",
     "Un volcán es una abertura en la corteza terrestre por la que sale roca fundida, llamada magma, junto con gases "
     "y ceniza. Cuando el magma llega a la superficie se llama lava. Con el tiempo, las capas de lava y ceniza "
     "forman una montaña con forma de cono."),
    ("es", "Escribe un mensaje corto para felicitar a un amigo por su nuevo trabajo.",
     "¡Enhorabuena por tu nuevo trabajo! Te lo mereces después de tanto esfuerzo. Estoy seguro de que lo harás "
     "genial. ¡Tenemos que celebrarlo pronto!"),
    ("fr", "Pourquoi les feuilles des arbres changent-elles de couleur en automne ?",
     "En automne, les jours raccourcissent et l'arbre cesse de produire de la chlorophylle, le pigment vert qui "
     "capte la lumière. Le vert disparaît alors et laisse voir les pigments jaunes et orange qui étaient déjà dans la "
     "feuille. Certains arbres fabriquent aussi des pigments rouges à cette période."),
    ("fr", "Donne trois conseils pour bien dormir.",
     "1. Couche-toi et lève-toi à heures régulières.\n2. Évite les écrans pendant l'heure qui précède le coucher.\n"
     "3. Garde ta chambre sombre, calme et fraîche."),
    ("fr", "Qu'est-ce que la photosynthèse ?",
     "La photosynthèse est le processus par lequel les plantes fabriquent leur nourriture. Grâce à l'énergie de la "
     "lumière, captée par la chlorophylle, elles transforment le dioxyde de carbone de l'air et l'eau du sol en "
     "sucre, et rejettent de l'oxygène."),
    ("fr", "Écris un court message pour remercier un voisin qui a arrosé tes plantes.",
     "Merci beaucoup d'avoir arrosé mes plantes pendant mon absence ! Elles sont en pleine forme grâce à toi. "
     "Je te rapporte un petit souvenir de vacances."),
    ("de", "Warum ist regelmäßige Bewegung gesund?",
     "Regelmäßige Bewegung stärkt das Herz und den Kreislauf, hält die Muskeln und Knochen kräftig und hilft, ein "
     "gesundes Gewicht zu halten. Sie verbessert außerdem den Schlaf und die Stimmung und senkt das Risiko für "
     "Krankheiten wie Diabetes. Schon dreißig Minuten zügiges Gehen an den meisten Tagen machen einen Unterschied."),
    ("de", "Nenne drei Tipps, um Deutsch schneller zu lernen.",
     "1. Übe jeden Tag ein wenig, statt einmal pro Woche viel.\n2. Höre deutsche Podcasts oder Musik, um dich an den "
     "Klang zu gewöhnen.\n3. Sprich so oft wie möglich mit Muttersprachlern, auch wenn du Fehler machst."),
    ("de", "Was ist ein Regenbogen?",
     "Ein Regenbogen entsteht, wenn Sonnenlicht auf Regentropfen trifft. Das Licht wird im Tropfen gebrochen und "
     "gespiegelt und dabei in seine Farben zerlegt, von Rot außen bis Violett innen. Man sieht ihn, wenn die Sonne "
     "hinter einem steht und vor einem Regen fällt."),
    ("de", "Schreibe eine kurze Nachricht, um ein Treffen zu verschieben.",
     "Hallo Jonas, leider schaffe ich es morgen um 15 Uhr nicht. Können wir unser Treffen auf Donnerstag zur "
     "gleichen Zeit verschieben? Entschuldige die kurzfristige Änderung und danke für dein Verständnis!"),
    ("it", "Perché è importante fare colazione?",
     "La colazione fornisce energia dopo il digiuno della notte e aiuta a concentrarsi durante la mattina. Una "
     "colazione equilibrata, per esempio con pane integrale, frutta e yogurt, riduce la voglia di spuntini poco sani "
     "prima di pranzo."),
    ("it", "Dammi due consigli per organizzare meglio la giornata.",
     "1. La sera prima scrivi una lista delle tre cose più importanti da fare.\n2. Affronta il compito più difficile "
     "al mattino, quando hai più energia."),
    ("pt", "O que é a reciclagem?",
     "Reciclagem é o processo de recolher materiais usados, como papel, vidro, metal e plástico, e transformá-los em "
     "novos produtos. Ela poupa matérias-primas e energia e reduz a quantidade de lixo nos aterros."),
    ("pt", "Dê três dicas para estudar melhor.",
     "1. Estude em sessões curtas com pausas entre elas.\n2. Teste-se com perguntas em vez de só reler as notas.\n"
     "3. Durma bem, porque o sono ajuda a fixar o que aprendeu."),
]

# Short sentences with our own translations: (English, Spanish, French, German)
SENTENCES = [
    ("The train leaves at eight in the morning.", "El tren sale a las ocho de la mañana.",
     "Le train part à huit heures du matin.", "Der Zug fährt um acht Uhr morgens ab."),
    ("My sister works in a hospital.", "Mi hermana trabaja en un hospital.", "Ma sœur travaille dans un hôpital.",
     "Meine Schwester arbeitet in einem Krankenhaus."),
    ("We are going to the beach tomorrow.", "Mañana vamos a la playa.", "Nous allons à la plage demain.",
     "Wir fahren morgen an den Strand."),
    ("Could you help me, please?", "¿Podrías ayudarme, por favor?", "Pourrais-tu m'aider, s'il te plaît ?",
     "Könntest du mir bitte helfen?"),
    ("The library closes at six.", "La biblioteca cierra a las seis.", "La bibliothèque ferme à six heures.",
     "Die Bibliothek schließt um sechs."),
    ("I have lived here for three years.", "Vivo aquí desde hace tres años.", "J'habite ici depuis trois ans.",
     "Ich wohne seit drei Jahren hier."),
    ("The soup is too hot.", "La sopa está demasiado caliente.", "La soupe est trop chaude.",
     "Die Suppe ist zu heiß."),
    ("Where is the nearest pharmacy?", "¿Dónde está la farmacia más cercana?", "Où est la pharmacie la plus proche ?",
     "Wo ist die nächste Apotheke?"),
    ("It rained all weekend.", "Llovió todo el fin de semana.", "Il a plu tout le week-end.",
     "Es hat das ganze Wochenende geregnet."),
    ("Our meeting starts in ten minutes.", "Nuestra reunión empieza en diez minutos.",
     "Notre réunion commence dans dix minutes.", "Unser Meeting beginnt in zehn Minuten."),
    ("He forgot his umbrella at the office.", "Olvidó su paraguas en la oficina.",
     "Il a oublié son parapluie au bureau.",
     "Er hat seinen Regenschirm im Büro vergessen."),
    ("The children are playing in the garden.", "Los niños están jugando en el jardín.",
     "Les enfants jouent dans le jardin.", "Die Kinder spielen im Garten."),
]

# ------------------------------------------------------------------------------------- hand-written: passages
# (passage, summary, title, three keywords, a question about it, its answer)
PASSAGES = [
    ("Community gardens are spreading in many cities. Residents rent a small plot for a modest yearly fee and grow "
     "vegetables, herbs and flowers. Besides fresh food, the gardens give neighbours a reason to meet, teach children "
     "where food comes from and turn empty lots into green spaces that cool the surrounding streets in summer.",
     "Community gardens let city residents grow food on rented plots while bringing neighbours together, teaching "
     "children and greening empty lots.",
     "Why Community Gardens Are Growing", "community gardens, cities, green spaces",
     "What do residents pay for a plot?", "They pay a modest yearly fee."),
    ("The town council voted on Tuesday to extend the opening hours of the public swimming pool during the summer. "
     "From July 1 the pool will open at 6 am instead of 8 am on weekdays, a change requested by many residents who "
     "want to swim before work. The extra hours will be paid for by a small rise in the price of season tickets.",
     "The council extended summer weekday pool hours to start at 6 am, funded by slightly pricier season tickets.",
     "Pool to Open Earlier This Summer", "swimming pool, opening hours, town council",
     "How will the extra hours be paid for?", "By a small rise in the price of season tickets."),
    ("Honeybees communicate the location of food with a movement called the waggle dance. A bee returning to the hive "
     "walks in a figure-eight pattern, shaking its body during the straight part. The angle of that straight run "
     "shows the direction of the food relative to the sun, and its length tells the other bees how far away the "
     "food is.",
     "Honeybees use the waggle dance, whose angle and length show the direction and distance of food.",
     "The Language of the Waggle Dance", "honeybees, waggle dance, communication",
     "What does the length of the straight run tell other bees?", "It tells them how far away the food is."),
    ("Remote work has changed how many companies use their offices. Instead of a desk for every employee, more firms "
     "now offer shared desks that staff book in advance, and they turn the saved space into meeting rooms and quiet "
     "areas. Employees come in on certain days to collaborate and work from home when they need to focus.",
     "With remote work, companies are replacing assigned desks with bookable ones and more meeting and quiet space.",
     "How Remote Work Is Reshaping Offices", "remote work, offices, shared desks",
     "What do firms do with the space they save?", "They turn it into meeting rooms and quiet areas."),
    ("The first week with a new puppy is often the hardest. Puppies need to go outside every two or three hours, "
     "including at night, and they chew almost anything they find. Trainers advise keeping a fixed routine for meals, "
     "walks and sleep, rewarding good behaviour straight away, and removing cables and shoes from the floor.",
     "A new puppy needs frequent trips outside and watching for chewing; a fixed routine and instant rewards help.",
     "Surviving the First Week With a Puppy", "puppy, training, routine",
     "How often do puppies need to go outside?", "Every two or three hours, including at night."),
    ("Ocean plastic is a growing problem. Much of it starts on land, as bags, bottles and packaging carried by rivers "
     "to the sea. Over time sunlight and waves break it into tiny pieces called microplastics, which are eaten by "
     "fish and other animals and can end up in the food we eat.",
     "Plastic from land reaches the ocean through rivers and breaks into microplastics that enter the food chain.",
     "From River to Plate: The Path of Ocean Plastic", "ocean plastic, microplastics, pollution",
     "What breaks plastic into microplastics?", "Sunlight and waves."),
    ("Electric scooters for rent have appeared in many cities over the past few years. Users unlock them with an app "
     "and pay by the minute. Supporters say they cut short car trips, while critics complain about scooters left on "
     "pavements and about accidents. Several cities now require parking in marked zones and limit top speeds.",
     "Rental e-scooters spread quickly; cities now answer complaints about parking and safety with zones and speed "
     "limits.",
     "Cities Rein In Rental Scooters", "electric scooters, cities, regulation",
     "How do users pay for the scooters?", "They pay by the minute through an app."),
    ("Drinking coffee late in the day can disturb sleep even when people feel no effect. Caffeine blocks a brain "
     "chemical that builds up during the day and makes us feel sleepy. Its effect fades slowly: about half of the "
     "caffeine from an afternoon cup is still in the body five or six hours later.",
     "Caffeine lingers for hours and blocks the brain's sleepiness signal, so late coffee can disturb sleep.",
     "Why Your Afternoon Coffee Keeps You Up", "caffeine, sleep, coffee",
     "How long until half the caffeine is gone?", "About five or six hours."),
]

# ------------------------------------------------------------------------------------- hand-written: conversations
CONVERSATIONS = [
    [("user", "I want to start reading more books. Any suggestions on how?"),
     ("assistant", "Set a small daily goal, such as ten pages before bed, and keep a book with you for spare moments "
                   "like commutes. Choose books you actually enjoy rather than ones you think you should read, and "
                   "feel free to stop a book that bores you."),
     ("user", "What kind of books are good for getting started?"),
     ("assistant", "Short, gripping books work well: mystery novels, short story collections or popular non-fiction "
                   "on a topic you already like. A book of around 200 to 300 pages gives you a quick sense of "
                   "achievement, which makes it easier to pick up the next one.")],
    [("system", "You are a concise assistant for a cooking website."),
     ("user", "How long should I boil an egg for a runny yolk?"),
     ("assistant", "Put the egg into boiling water and cook it for about 6 minutes, then cool it briefly under cold "
                   "water. Large eggs straight from the fridge may need 30 seconds more.")],
    [("user", "What is 15% of 80?"),
     ("assistant", "15% of 80 is 12, because 0.15 × 80 = 12."),
     ("user", "And what would 80 be after a 15% discount?"),
     ("assistant", "After a 15% discount, 80 becomes 68: 80 − 12 = 68.")],
    [("system", "You answer questions about travel in a friendly tone."),
     ("user", "Is it better to book flights early or at the last minute?"),
     ("assistant", "For most trips it is better to book early. Prices on popular routes tend to rise as seats fill "
                   "up, especially in holiday seasons. Booking one to three months ahead for short trips, and earlier "
                   "for long-haul or peak travel, usually gets you a fair price and a better choice of times.")],
    [("user", "Can you explain what a password manager is?"),
     ("assistant", "A password manager is an app that stores all your passwords in an encrypted vault, protected by "
                   "one master password. It can create long random passwords for each site and fill them in for you, "
                   "so you do not have to remember them."),
     ("user", "Is it safe to keep all passwords in one place?"),
     ("assistant", "Reputable password managers encrypt the vault so that only your master password can unlock it, "
                   "and it is far safer than reusing the same password everywhere. Choose a strong, unique master "
                   "password and turn on two-factor authentication for the manager itself.")],
    [("user", "My tomato plants have yellow leaves at the bottom. What could be wrong?"),
     ("assistant", "Yellow lower leaves on tomatoes usually mean one of three things: overwatering, a lack of "
                   "nitrogen, or a fungal disease such as early blight, which also shows brown spots with rings. "
                   "Water at the base only when the soil surface is dry, feed with a balanced fertiliser and remove "
                   "the affected leaves so the problem does not spread.")],
    [("system", "You are a helpful assistant. Answer in Spanish."),
     ("user", "What is the capital of Japan?"),
     ("assistant", "La capital de Japón es Tokio.")],
    [("user", "Help me name my new bakery. It focuses on sourdough bread."),
     ("assistant", "Here are some ideas: The Rising Loaf, Wild Yeast Bakery, Crust & Crumb, The Patient Dough and "
                   "Starter Culture. Names that hint at slow fermentation suit a sourdough bakery well."),
     ("user", "I like Crust & Crumb. Can you write a one-line slogan for it?"),
     ("assistant", "Crust & Crumb: real sourdough, baked slowly, worth every bite.")],
]

# ------------------------------------------------------------------------------------- generated families
ITEMS = ["notebooks", "apples", "tickets", "bus passes", "plant pots", "coffee mugs", "t-shirts", "pencils"]
NAMES = ["Lena", "Omar", "Priya", "Jonas", "Chloé", "Mateo", "Aiko", "Tom", "Fatima", "Noah"]
WORDS = ["river", "candle", "orbit", "maple", "jacket", "violin", "harbor", "pepper", "window", "tunnel", "lemon",
         "garden", "silver", "rocket", "meadow", "puzzle"]


def money(value):
    return f"${value:,.2f}" if value != int(value) else f"${int(value):,}"


def word_problem(rng):
    kind = rng.randrange(4)
    name = rng.choice(NAMES)
    if kind == 0:
        item, price, count = rng.choice(ITEMS), rng.choice([1.5, 2, 2.5, 3, 4, 6, 7.5, 12]), rng.randint(3, 12)
        paid = (int(price * count) // 10 + 1) * 10 + rng.choice([0, 10, 20])
        total = price * count
        return (f"{name} buys {count} {item} at {money(price)} each and pays with {money(paid)}. How much change "
                f"does {name} get?",
                f"The {item} cost {count} × {money(price)} = {money(total)}. The change is {money(paid)} − "
                f"{money(total)} = {money(paid - total)}.")
    if kind == 1:
        speed, hours = rng.choice([40, 50, 60, 72, 80, 90]), rng.choice([1.5, 2, 2.5, 3, 4])
        return (f"A car travels at {speed} km/h for {hours:g} hours. How far does it go?",
                f"Distance = speed × time = {speed} km/h × {hours:g} h = {speed * hours:g} km.")
    if kind == 2:
        a, b, c = rng.randint(12, 40), rng.randint(5, 30), rng.randint(3, 20)
        return (f"A class has {a} students. {b} more join during the term and {c} leave. How many students are in "
                "the class now?",
                f"Start with {a}, add {b} and subtract {c}: {a} + {b} − {c} = {a + b - c} students.")
    width, length = rng.randint(3, 15), rng.randint(4, 20)
    return (f"A rectangular room is {width} m wide and {length} m long. What are its area and perimeter?",
            f"Area = {width} m × {length} m = {width * length} square metres. Perimeter = 2 × ({width} m + {length} m) "
            f"= {2 * (width + length)} m.")


def percentage(rng):
    base, pct = rng.choice([40, 60, 80, 120, 150, 200, 250, 360, 480]), rng.choice([5, 10, 15, 20, 25, 30, 40])
    part = base * pct / 100
    if rng.random() < 0.5:
        return (f"What is {pct}% of {base}?",
                f"{pct}% of {base} is {part:g}, because {pct / 100:g} × {base} = {part:g}.")
    return (f"A jacket costs {money(base)} and is on sale for {pct}% off. What is the sale price?",
            f"The discount is {pct}% of {money(base)} = {money(part)}, so the sale price is {money(base)} − "
            f"{money(part)} = {money(base - part)}.")


def conversion(rng):
    kind = rng.randrange(4)
    if kind == 0:
        km = rng.randint(2, 60)
        return (f"How many miles is {km} kilometres?", f"One kilometre is about 0.621 miles, so {km} km is about "
                f"{km * 0.621371:.1f} miles.")
    if kind == 1:
        celsius = rng.choice(range(-20, 101, 5))
        return (f"Convert {celsius} °C to Fahrenheit and explain how.",
                f"Multiply by 9/5 and add 32: {celsius} × 9/5 + 32 = {celsius * 9 / 5 + 32:g} °F.")
    if kind == 2:
        minutes = rng.randint(61, 300)
        return (f"How many hours and minutes are {minutes} minutes?",
                f"{minutes} minutes is {minutes // 60} hour{'s' if minutes // 60 != 1 else ''} and {minutes % 60} "
                f"minutes, since {minutes // 60} × 60 = {minutes // 60 * 60} and {minutes} − {minutes // 60 * 60} = "
                f"{minutes % 60}.")
    kg = rng.choice([0.5, 1.5, *range(2, 90, 3)])
    return (f"How many pounds is {kg:g} kg?", f"One kilogram is about 2.205 pounds, so {kg:g} kg is about "
            f"{kg * 2.20462:.1f} pounds.")


def list_task(rng):
    numbers = rng.sample(range(1, 99), rng.randint(5, 8))
    kind = rng.randrange(3)
    shown = ", ".join(map(str, numbers))
    if kind == 0:
        return (f"Sort these numbers from smallest to largest: {shown}", ", ".join(map(str, sorted(numbers))))
    if kind == 1:
        mean = sum(numbers) / len(numbers)
        return (f"What is the average of {shown}?",
                f"The sum is {sum(numbers)} and there are {len(numbers)} numbers, so the average is "
                f"{sum(numbers)} ÷ {len(numbers)} = {mean:.2f}".rstrip("0").rstrip(".") + ".")
    words = rng.sample(WORDS, rng.randint(4, 6))
    return (f"Put these words in alphabetical order: {', '.join(words)}", ", ".join(sorted(words)))


def text_task(rng):
    words = rng.sample(WORDS, rng.randint(3, 5))
    kind = rng.randrange(3)
    if kind == 0:
        sentence = f"The {words[0]} near the {words[1]} looked like a {words[2]}."
        return (f"How many words are in this sentence? \"{sentence}\"",
                f"The sentence has {len(sentence.split())} words.")
    if kind == 1:
        return (f"Turn this list into a bulleted list: {', '.join(words)}", "\n".join(f"- {w}" for w in words))
    word = words[0]
    return (f"Spell the word \"{word}\" backwards.", f"\"{word}\" spelled backwards is \"{word[::-1]}\".")


def translation_items():
    """(instruction, answer, language) for every sentence into every language, and one back into English."""
    names = {"es": "Spanish", "fr": "French", "de": "German"}
    for english, *others in SENTENCES:
        for code, text in zip(names, others):
            yield f"Translate into {names[code]}: \"{english}\"", text, code, english
        yield f"Translate into English: \"{others[0]}\"", english, "en", english


# ------------------------------------------------------------------------------------- assembly


def record(category, user, answer, language="en", system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages, "category": category, "language": language}


def to_test(key):
    """The fixed side of a hand-written item: the same item always lands in the same file."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 1000 < TEST_SHARE * 1000


def hand_written():
    for question, answer in EXPLAIN:
        yield question, record("explanation", question, answer)
    for question, answer in ADVICE:
        yield question, record("advice", question, answer)
    for question, answer in COMPARE:
        yield question, record("comparison", question, answer)
    for question, answer in WRITING:
        yield question, record("writing", question, answer)
    for question, answer in CODE:
        yield question, record("code", question, answer)
    for language, question, answer in LANGUAGES:
        yield question, record("other_language", question, answer, language)
    for instruction, answer, language, key in translation_items():
        yield key, record("translation", instruction, answer, language)  # one sentence stays on one side
    for passage, summary, title, keywords, question, answer in PASSAGES:
        tasks = [("summary", f"Summarize this paragraph in one sentence.\n\n{passage}", summary),
                 ("title", f"Suggest a title for this text.\n\n{passage}", title),
                 ("keywords", f"List three keywords for this text, separated by commas.\n\n{passage}", keywords),
                 ("reading", f"{passage}\n\nBased on the text: {question}", answer)]
        for category, prompt, target in tasks:
            yield passage, record(category, prompt, target)
    for turns in CONVERSATIONS:
        key = turns[0][1] + turns[1][1]
        yield key, {"messages": [{"role": role, "content": text} for role, text in turns],
                    "category": "conversation", "language": "es" if "Spanish" in key else "en"}


def generated(seed, count):
    rng = random.Random(seed)
    families = [("word_problem", word_problem), ("percentage", percentage), ("conversion", conversion),
                ("list", list_task), ("text", text_task)]
    seen, records = set(), []
    for attempt in range(count * 50):  # bounded: a family with few distinct questions must not loop forever
        if len(records) == count:
            break
        category, family = families[attempt % len(families)]
        question, answer = family(rng)
        if question not in seen:
            seen.add(question)
            records.append(record(category, question, answer))
    return records, seen


def write_jsonl(path, records):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    os.replace(tmp, path)


def mix_into(instruct_train, general_train):
    """Refresh the general share at the end of the instruction data (alpaca schema): single-turn items only."""
    records = json.loads(instruct_train.read_text(encoding="utf-8"))
    ours = {r["messages"][0]["content"] for r in general_train}
    own = [r for r in records if r.get("instruction") not in ours]  # the hand-written instruction records stay first
    mixed = own + [{"instruction": r["messages"][0]["content"], "input": "", "output": r["messages"][1]["content"]}
                   for r in general_train if [m["role"] for m in r["messages"]] == ["user", "assistant"]]
    fd, tmp = tempfile.mkstemp(dir=instruct_train.parent, prefix=f".{instruct_train.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(mixed, ensure_ascii=False, indent=1) + "\n")
    os.replace(tmp, instruct_train)
    print(f"{instruct_train}: {len(own)} instruction records + {len(mixed) - len(own)} general ones")


def main(folder=HERE, instruct_train=INSTRUCT_TRAIN):
    test, train = [], []
    for key, item in hand_written():
        (test if to_test(key) else train).append(item)
    test_generated, test_questions = generated(seed=1, count=120)
    train_generated, _ = generated(seed=2, count=140)
    test += test_generated
    # the same question never appears in both files
    train += [r for r in train_generated if r["messages"][-2]["content"] not in test_questions]
    for name, records in (("test", test), ("train", train)):
        write_jsonl(Path(folder) / f"{name}.jsonl", records)
        print(f"{name}.jsonl: {len(records)} examples")
    if instruct_train:
        mix_into(Path(instruct_train), train)


if __name__ == "__main__":
    main()
