"""The words of the rejection ("not a digit", audrey.live.judge), by role. None of them is a digit's
name or its homophone ("to", "for", "won", "ate"), and no list shares a word with another role's:
the detector learns DETECTOR_WORDS, NEAR_MISSES, COMMON_WORDS and made-up words (pseudo_words);
calibration sets the thresholds on CALIBRATION_WORDS; tests and benchmarks score HELD_OUT_WORDS
(none of the others is a held-out word or its homophone: "know", "high"), so that no step is
measured on words an earlier step learnt.
"""

from __future__ import annotations

import numpy as np

# The detector learns these as "not a digit", in 25 voices each.
DETECTOR_WORDS = (
    "car", "book", "chair", "phone", "money", "street", "city", "summer", "winter", "orange", "letter",
    "number", "answer", "question", "people", "little", "great", "small", "big", "new", "old", "right",
    "left", "up", "down", "in", "out", "on", "off", "here", "there", "when", "why", "how", "who", "which",
    "this", "that", "thing", "time", "year", "day", "week", "month", "name", "family", "friend", "school",
    "work", "home", "night", "very", "much", "many", "some", "any", "every", "other", "about", "after",
    "before", "again", "still", "never", "always", "together", "quickly", "yesterday", "tomorrow", "today",
    "bye", "cheese", "pizza", "flower", "monkey", "elephant", "zebra", "ready", "hold", "call", "back",
    "send", "cancel", "repeat", "help", "menu", "star", "pound", "hash", "dial", "seventh", "tenth",
    "second", "first", "third", "twelve", "thirteen", "million", "heavy", "oven", "neighbor", "freedom",
    "wonder", "tower", "driving", "fixed", "lime", "hear", "zeal", "clever", "ten", "eleven",
)

# Near misses: each digit's name with another onset or ending, or none, so that the detector learns
# the sounds that make a digit, not just its rhythm (none of them is a held-out word or its homophone).
NEAR_MISSES = (
    "hero", "nero", "bero", "pero", "kero", "tero",  # zero
    "bun", "fun", "gun", "run", "sun", "done", "nun", "pun", "wuk", "wud",  # one
    "boo", "goo", "moo", "shoe", "coo", "loo", "toot", "tube", "toom",  # two
    "tree", "free", "flee", "glee", "spree", "threek",  # three
    "door", "more", "pour", "core", "sore", "tore", "war", "fort", "form", "fork",  # four
    "hive", "dive", "live", "jive", "chive", "fife", "fight", "file", "firm",  # five
    "fix", "mix", "kicks", "ticks", "picks", "sick", "sit", "sips", "sax", "socks",  # six
    "devon", "beven", "leven", "neven", "severn", "sevick",  # seven
    "bait", "date", "gate", "hate", "late", "mate", "rate", "weight", "ace", "ape", "aim", "ache",  # eight
    "fine", "line", "mine", "dine", "wine", "pine", "sign", "nice", "knife", "night",  # nine
    "ero", "un", "ree", "our", "ive", "ix", "even", "evan", "ine", "oo",  # a digit without its first sound
)

# Calibration sets the thresholds against these.
CALIBRATION_WORDS = (
    "apple", "window", "table", "water", "music", "garden", "purple", "yellow", "house", "mother", "river",
    "coffee", "paper", "doctor", "happy", "morning", "listen", "open", "button", "kitchen", "maybe",
    "thanks", "sorry", "please", "good", "cat", "dog", "bird", "blue", "green", "light", "the", "and",
    "what", "where", "twenty", "hundred", "kevin", "lion", "wait", "sticky", "letters", "seat", "fire",
    "nighttime", "zoo", "won't",
)

# In no training or calibration list: what tests and benchmarks score the rejection on.
HELD_OUT_WORDS = ("hello", "yes", "heaven", "often", "no", "okay", "stop", "weather", "computer", "sure", "nothing", "hi")

# Everyday English words, 16 voices each in the detector's training.
COMMON_WORDS = tuple("""
able above accept across act add address afraid against age agree air allow almost alone along
already also although among amount animal another apartment appear area arm army around arrive art
article ask attack attention aunt autumn away baby bad bag ball bank bar base basket bath battle
beach bear beat beautiful because become bed beer begin behind believe bell belt bench best better
between bicycle bill bit bitter black blame blanket blood board boat body bone border boss bottle
bottom bowl box boy brain branch bread break breakfast bridge bright bring brother brown brush build
burn bus business busy butter buy cable cake camera camp candle cap captain card care carry case
castle catch cause ceiling center certain chance change charge cheap check chicken child chocolate
choose church circle claim class clean clear climb clock close cloth cloud club coat cold collect
college color come common company compare complete concern control cook cool copy corner correct
cost cotton count country couple course cousin cover cow crash cream crowd cry cup cut damage dance
danger dark daughter dead deal dear decide deep degree desk detail die difficult dinner direction
dirty discover dish double doubt draw dream dress drink drive drop dry duck dust early earth east
easy eat edge effect egg either empty end enemy engine enough enter equal escape evening event exact
example excuse exit expect explain eye face fact fail fair fall false famous far farm fast fat
father fear feed feel female fence few field fill film final find finger finish fish flag flat floor
fly fold follow food foot force forest forget forward frame fresh fridge front fruit fuel full funny
future game gas gather general gentle gift girl give glass glove goal god gold golf grab grand grass
gray ground group grow guard guess guest guide guitar hair half hall hammer hand hang hard hat head
health heart heat height hide hill history hit hobby hole holiday honest horse hospital hot hotel
hour human hungry hurry hurt husband ice idea ill image important inch include inside into iron
island jacket job join joke judge juice jump jungle just keep key kick kid kill kind king kiss knee
lady lake lamp land language large last laugh law lawyer lazy lead leaf learn least leather leave
leg lemon less lesson level library lid lift like limit lip list load local lock long look lose loud
love low luck lunch machine mad magic mail main make male man map mark market marry master match
matter meal mean meat meet member memory message metal middle milk mind minute mirror miss model
modern moment moon mountain mouse mouth move movie mud muscle museum must nail narrow nation nature
near neck need needle nest net news next nose note notice ocean offer office oil only opinion order
outside owner page pain paint pair palace pan pants park part party pass past path pay peace pen
pencil pepper person pet pick picture piece pig pill pilot pink pipe place plan plane plant plate
play pocket point police pool poor potato power present press pretty price print prison private
prize problem promise proud public pull pump punch push queen quick quiet rabbit race radio rain
raise reach read real reason record red relax remember rent report rest return rice rich ride ring
road rock roof room root rope rough round row rule salad salt same sand save say scale science score
season secret sell sense serve service shadow shake shape share sharp sheep shelf shell shirt shop
short shoulder shout show shut side silver simple sing sister size skin skirt sky sleep slow smell
smile smoke snake snow soap soft soldier son song soon sound soup south space speak special speed
spell spend spoon sport spring square stage stairs stamp stand start station stay steal step stick
stone store storm story strange stress string strong student study stuff sugar suit supper surprise
sweet swim system tail take talk tall taste taxi tea teach team teeth tell tennis test thank thick
thin think thirsty throw thumb ticket tiger tired title toe toilet tomato tongue tool tooth top
total touch town toy track trade train travel trip trouble truck true trust try turn type ugly uncle
under understand until use usual valley value van video village visit voice vote walk wall want warm
wash watch wave way wear wedding welcome west wet wheel white whole wide wife wild win wind wing
wish woman wood word world worry write wrong young
""".split())

_ONSETS = ("", "b", "bl", "br", "ch", "d", "dr", "f", "fl", "g", "gl", "gr", "h", "j", "k", "kl", "l", "m", "n", "p",
           "pl", "pr", "r", "s", "sh", "sk", "sl", "sm", "sn", "sp", "st", "t", "tr", "v", "w", "y", "z")
_CODAS = ("", "b", "d", "g", "k", "l", "m", "n", "p", "t", "s", "sh", "st", "nd", "ng", "lk", "mp", "rt", "ck", "ft")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ee", "oo", "ou", "oa", "oi", "ar", "ur")
_FOREIGN_VOWELS = ("a", "o", "ou", "oi", "ur")  # as in cat, hot, out, coin, turn: in no digit's name


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """Made-up words for espeak-ng to say, none of them a digit: two or three syllables, or one
    syllable around a vowel no digit has (the short a of "cat", the o of "hot", ou, oi, ur)."""
    out: set[str] = set()
    while len(out) < n:
        syllables = int(rng.choice([1, 2, 2, 3]))
        parts = []
        for k in range(syllables):
            vowels = _FOREIGN_VOWELS if syllables == 1 else _VOWELS
            coda = _CODAS[rng.integers(len(_CODAS))] if (k == syllables - 1 or rng.random() < 0.3) else ""
            parts.append(_ONSETS[rng.integers(len(_ONSETS))] + vowels[rng.integers(len(vowels))] + coda)
        word = "".join(parts)
        if len(word) >= 2:
            out.add(word)
    return sorted(out)
