"""A small command-and-query grammar (in the spirit of DARPA Resource Management, with our own words).

Templates hold literal words and `{slot}` references; each slot is a tuple of phrases, which may
themselves reference slots. Expansion picks uniformly inside every slot, so every word shows up
regularly in a few hundred random sentences. Text uses only A-Z, space and apostrophe.
"""

from __future__ import annotations

import random
import re

_UNITS = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN "
          "FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN").split()
_TENS = "TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_ORDINALS = ("FIRST SECOND THIRD FOURTH FIFTH SIXTH SEVENTH EIGHTH NINTH TENTH ELEVENTH TWELFTH "
             "THIRTEENTH FOURTEENTH FIFTEENTH SIXTEENTH SEVENTEENTH EIGHTEENTH NINETEENTH").split()


def number_words(n: int) -> str:
    """0..99 in words: 42 -> 'FORTY TWO'."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_words: {n} is outside 0..99")
    if n < 20:
        return _UNITS[n]
    tens, unit = divmod(n, 10)
    return _TENS[tens - 2] + (f" {_UNITS[unit]}" if unit else "")


def ordinal_words(n: int) -> str:
    """1..31 as an ordinal: 23 -> 'TWENTY THIRD'."""
    if not 1 <= n <= 31:
        raise ValueError(f"ordinal_words: {n} is outside 1..31")
    if n < 20:
        return _ORDINALS[n - 1]
    tens, unit = divmod(n, 10)
    if unit == 0:
        return _TENS[tens - 2][:-1] + "IETH"  # TWENTIETH, THIRTIETH
    return f"{_TENS[tens - 2]} {_ORDINALS[unit - 1]}"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SLOTS: dict[str, tuple[str, ...]] = {
    # numbers and time
    "digit": tuple(_UNITS[:10]),
    "unit": tuple(_UNITS[1:10]),
    "several": tuple(_UNITS[2:10]),
    "teen": tuple(_UNITS[10:20]),
    "tens": tuple(_TENS),
    "number": ("{unit}", "{teen}", "{tens}", "{tens} {unit}"),
    "count": ("{several}", "{teen}", "{tens}", "{tens} {unit}", "{several} HUNDRED", "{several} THOUSAND"),
    "few": tuple(_UNITS[2:13]),
    "hour": tuple(_UNITS[1:13]),
    "minute": tuple(number_words(n) for n in range(10, 60) if n % 5 == 0) + ("OH FIVE",),
    "clock": ("{hour} O'CLOCK", "{hour} {minute}", "{minute} PAST {hour}", "HALF PAST {hour}",
              "QUARTER PAST {hour}", "QUARTER TO {hour}", "NOON", "MIDNIGHT"),
    "day": _words("MONDAY TUESDAY WEDNESDAY THURSDAY FRIDAY SATURDAY SUNDAY"),
    "month": _words("JANUARY FEBRUARY MARCH APRIL MAY JUNE JULY AUGUST SEPTEMBER OCTOBER NOVEMBER DECEMBER"),
    "ordinal": tuple(ordinal_words(n) for n in (*range(1, 13), 20, 30)),
    "date": ("{month} THE {ordinal}", "THE {ordinal} OF {month}"),
    "part": _words("MORNING AFTERNOON EVENING"),
    "day_ref": ("TODAY", "TOMORROW", "TONIGHT", "THIS {part}", "TOMORROW {part}", "ON {day}",
                "ON {day} {part}", "NEXT {day}", "NEXT WEEK", "THIS WEEKEND", "ON {date}"),
    "when": ("AT {clock}", "BEFORE {clock}", "AFTER {clock}", "{day_ref}", "IN {count} MINUTES",
             "AT {clock} {day_ref}"),
    # things
    "colour": _words("RED GREEN BLUE YELLOW BLACK WHITE ORANGE PURPLE BROWN GREY PINK SILVER"),
    "adj": _words("SMALL LARGE BIG LITTLE OLD NEW HEAVY EMPTY BROKEN WOODEN"),
    "obj": _words("BOX CUP BOOK CHAIR BOTTLE PLATE KEY LAMP BAG SHOE COAT HAT BALL PEN CANDLE MIRROR "
                  "LETTER HAMMER BUCKET SPOON KNIFE GLASS"),
    "objs": _words("BOXES CUPS BOOKS CHAIRS BOTTLES PLATES KEYS LAMPS BAGS SHOES COATS HATS BALLS PENS "
                   "CANDLES MIRRORS LETTERS HAMMERS BUCKETS SPOONS KNIVES GLASSES"),
    "thing": ("{obj}", "{colour} {obj}", "{adj} {obj}"),
    "things": ("{objs}", "{colour} {objs}", "{adj} {objs}", "{adj} {colour} {objs}"),
    "room": _words("KITCHEN TABLE SHELF DESK DOOR WINDOW BED SOFA GARAGE GARDEN CELLAR HALLWAY BEDROOM OFFICE"),
    "prep": ("NEAR", "BEHIND", "UNDER", "ABOVE", "BESIDE", "INSIDE", "ON", "IN", "NEXT TO"),
    "place": _words("STATION AIRPORT HARBOR MARKET HOSPITAL SCHOOL LIBRARY MUSEUM HOTEL BANK BAKERY "
                    "CHURCH BRIDGE CASTLE FACTORY"),
    "city": _words("LONDON PARIS BOSTON DENVER CHICAGO DUBLIN OSLO MADRID BERLIN TOKYO CAIRO SYDNEY "
                   "TORONTO VIENNA"),
    "vehicle": _words("TRAIN BUS SHIP FERRY PLANE TRUCK TAXI BOAT TRAM TANKER"),
    "vehicles": _words("TRAINS BUSES SHIPS FERRIES PLANES TRUCKS TAXIS BOATS TRAMS TANKERS"),
    "ship": _words("VICTORIA ENTERPRISE DOLPHIN FALCON NEPTUNE ORION PHOENIX ATLAS"),
    "person": _words("ANNA PETER MARIA JAMES SARAH DAVID LUCY THOMAS EMMA GEORGE"),
    "role": _words("DOCTOR DRIVER CAPTAIN TEACHER MANAGER PILOT NURSE BAKER"),
    "event": _words("MEETING DINNER LUNCH BREAKFAST APPOINTMENT PARTY"),
    # actions
    "verb": _words("MOVE PUT BRING TAKE FIND OPEN CLOSE CLEAN PAINT COUNT CARRY SEND LOAD CHECK FETCH "
                   "HIDE DROP WASH"),
    "move": _words("MOVE BRING CARRY TAKE SEND PUSH PULL LIFT"),
    "speed": ("SLOWLY", "QUICKLY", "CAREFULLY", "QUIETLY"),
}

TEMPLATES: tuple[str, ...] = (
    "SHOW ME THE {things} {prep} THE {room}",
    "{move} {count} {colour} {objs} TO THE {room} {when}",
    "{move} THE {things} TO THE {room} {speed}",
    "WHAT TIME DOES THE {colour} {vehicle} LEAVE {day_ref}",
    "HOW MANY {things} ARE THERE {prep} THE {room}",
    "WHEN DOES THE {vehicle} FROM {city} ARRIVE {day_ref}",
    "IS THERE A {thing} {prep} THE {room}",
    "PLEASE {verb} THE {thing} {when}",
    "WHERE IS THE {ship} GOING ON {day}",
    "{person} NEEDS {count} {things} BEFORE {clock}",
    "SEND THE {vehicle} TO {city} ON {date}",
    "LIST EVERY {vehicle} THAT LEAVES {city} {day_ref}",
    "WHICH {obj} DID {person} PUT {prep} THE {room}",
    "DON'T {verb} THE {things} UNTIL {clock}",
    "HOW FAR IS THE {place} FROM THE {place}",
    "THE {vehicle} TO {city} LEAVES AT {clock} FROM PLATFORM {number}",
    "CAN YOU {verb} THE {thing} FOR {person} {speed}",
    "BOOK A TABLE FOR {few} AT {clock} ON {day}",
    "SET AN ALARM FOR {clock} {day_ref}",
    "WHAT IS THE WEATHER LIKE IN {city} {day_ref}",
    "REMIND {person} TO {verb} THE {things} {when}",
    "WHEN WILL THE {ship} REACH {city}",
    "HOW MANY {vehicles} ARE WAITING AT THE {place}",
    "ARE THERE ANY {vehicles} TO {city} AFTER {clock}",
    "THE {role} WANTS {count} {things} BY {day}",
    "DIAL {digit} {digit} {digit} {digit} FOR THE {place}",
    "{person} WILL MEET THE {role} AT THE {place} {when}",
    "WHAT'S {prep} THE {thing} IN THE {room}",
    "THE {vehicle} FROM {city} IS {number} MINUTES LATE",
    "CANCEL THE {event} WITH {person} ON {date}",
    "MOVE THE {event} WITH THE {role} TO {day} AT {clock}",
    "WHERE DID YOU PUT MY {things}",
    "BUY {few} TICKETS FOR THE {vehicle} TO {city} {day_ref}",
    "ASK THE {role} ABOUT THE {things} {prep} THE {room}",
    "IS THE {place} OPEN ON {day} {part}",
    "THE {place} IN {city} CLOSES AT {clock}",
    "TELL {person} THAT THE {ship} LEFT {city} {day_ref}",
    "HOW LONG DOES THE {vehicle} FROM {city} TO {city} TAKE",
    "I WANT {count} {things} DELIVERED TO ROOM {number} ON {date}",
    "PUT THE {thing} ON THE {ordinal} SHELF {prep} THE {room}",
    "THE {ordinal} {vehicle} TO {city} IS FULL",
    "{verb} THE {obj} AND THE {obj} {speed}",
    "HOW MANY {vehicles} LEFT {city} IN {month}",
    "PUT THE {event} IN THE DIARY FOR {date}",
    "WE NEED {teen} {things} FOR THE {event} ON {day}",
    "RESERVE {few} SEATS ON THE {vehicle} TO {city} {day_ref}",
    "{move} ALL THE {objs} {prep} THE {room} {when}",
)

MIN_WORDS, MAX_WORDS = 4, 16
_SLOT = re.compile(r"\{(\w+)\}")


def _vocabulary() -> list[str]:
    """Every literal word in the templates and slot phrases (slot references removed)."""
    words: set[str] = set()
    for text in TEMPLATES + tuple(p for phrases in SLOTS.values() for p in phrases):
        words.update(_SLOT.sub(" ", text).split())
    return sorted(words)


VOCABULARY: list[str] = _vocabulary()


def expand(template: str, rng: random.Random) -> str:
    """Fill every `{slot}` (recursively) with a uniformly chosen phrase."""
    def fill(match: re.Match) -> str:
        return expand(rng.choice(SLOTS[match.group(1)]), rng)

    return _SLOT.sub(fill, template)


def sentence(rng: random.Random) -> str:
    """One random sentence of MIN_WORDS..MAX_WORDS words."""
    while True:
        text = " ".join(expand(rng.choice(TEMPLATES), rng).split())
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            return text


def sentences(n: int, rng: random.Random) -> list[str]:
    """`n` distinct random sentences, in the order drawn (deterministic for a seeded `rng`)."""
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"grammar cannot produce {n} distinct sentences (got {len(seen)})")
        seen.setdefault(sentence(rng), None)
    return list(seen)
