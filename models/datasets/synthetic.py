"""A small generated catalog and event stream, for the demo when no MovieLens is at hand.

The point is that relevance is known: every item is written from one genre's vocabulary, so a
sentence encoder (all-MiniLM-L6-v2) puts items of a genre close together, and every user has
known favourite genres, so a demo or a test can check that recommendations land in them.
Everything is derived from `random.Random(seed)`; the same seed always gives the same records.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from models.datasets import DatasetError
from schemas.records import Event, EventType, Item


@dataclass(frozen=True)
class Genre:
    """The words a genre is written in; kept apart from other genres so embeddings separate."""

    slug: str
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    subjects: tuple[str, ...]
    plots: tuple[str, ...]
    details: tuple[str, ...]
    queries: tuple[str, ...]


GENRES: dict[str, Genre] = {
    "Sci-Fi": Genre(
        slug="scifi",
        adjectives=(
            "Starship", "Galactic", "Quantum", "Orbital",
            "Cosmic", "Android", "Nebula", "Hyperspace",
        ),
        nouns=(
            "Vanguard", "Odyssey", "Frontier", "Colony",
            "Protocol", "Horizon", "Singularity", "Armada",
        ),
        subjects=(
            "A crew of astronauts",
            "A lone space pilot",
            "A rogue android",
            "The captain of a starship",
            "A team of alien hunters",
        ),
        plots=(
            "travels through a wormhole to a distant galaxy",
            "makes first contact with an alien civilisation",
            "fights an interstellar war against a robot empire",
            "explores a derelict spaceship drifting past Jupiter",
            "races to repair a failing space station",
        ),
        details=(
            "in a future ruled by artificial intelligence",
            "with laser weapons, faster-than-light engines and cyborg soldiers",
            "as the last human colony on Mars runs out of oxygen",
            "while time travel paradoxes unravel the timeline",
        ),
        queries=(
            "space adventure with aliens",
            "starship battles in a distant galaxy",
            "robots and artificial intelligence in the future",
            "time travel science fiction",
        ),
    ),
    "Romance": Genre(
        slug="romance",
        adjectives=(
            "Sweet", "Forever", "Tender", "Secret",
            "Paris", "Summer", "Moonlit", "Beloved",
        ),
        nouns=(
            "Kisses", "Hearts", "Valentine", "Promise",
            "Wedding", "Sweetheart", "Serenade", "Embrace",
        ),
        subjects=(
            "Two strangers",
            "A shy florist and a jazz pianist",
            "A heartbroken bride and her best man",
            "Childhood sweethearts",
            "A widowed baker and a travelling poet",
        ),
        plots=(
            "fall deeply in love during one summer in Paris",
            "find their soulmate after a chance meeting at a wedding",
            "rekindle a passionate romance after years apart",
            "write love letters to a secret admirer",
            "must choose between true love and family duty",
        ),
        details=(
            "in a tender story of kisses, heartbreak and a marriage proposal",
            "as their love affair blossoms under the stars",
            "until a candlelit dinner changes their hearts forever",
            "in a romantic tale of longing and devotion",
        ),
        queries=(
            "romantic love story",
            "falling in love in Paris",
            "heartwarming romance with a happy wedding",
            "soulmates and true love",
        ),
    ),
    "Horror": Genre(
        slug="horror",
        adjectives=(
            "Haunted", "Bloody", "Cursed", "Wicked",
            "Demonic", "Undead", "Sinister", "Grave",
        ),
        nouns=(
            "Asylum", "Crypt", "Nightmare", "Possession",
            "Graveyard", "Exorcism", "Slaughter", "Coffin",
        ),
        subjects=(
            "A family moving into an old mansion",
            "A group of teenagers at a cabin in the woods",
            "A priest",
            "A night nurse at an abandoned asylum",
            "A grieving widow",
        ),
        plots=(
            "is stalked by a blood-thirsty demon",
            "awakens an evil ghost that possesses the living",
            "is hunted by a masked serial killer",
            "uncovers a satanic cult that performs human sacrifices",
            "is terrorised by zombies rising from the graveyard",
        ),
        details=(
            "in a terrifying nightmare of screams, gore and death",
            "as the haunting grows more violent every night",
            "while a curse drags their souls into hell",
            "in a gruesome tale of demonic possession and exorcism",
        ),
        queries=(
            "scary haunted house horror",
            "terrifying ghost and demon possession",
            "zombie gore and slasher killers",
            "creepy supernatural horror at night",
        ),
    ),
    "Comedy": Genre(
        slug="comedy",
        adjectives=("Crazy", "Goofy", "Wacky", "Silly", "Hilarious", "Awkward", "Dumb", "Zany"),
        nouns=(
            "Roommates", "Vacation", "Bachelor Party", "Road Trip",
            "Prank Week", "Office Party", "Misfits", "Sitcom",
        ),
        subjects=(
            "Two clumsy best friends",
            "A bumbling substitute teacher and his students",
            "The members of a dysfunctional family",
            "A hapless stand-up comedian and his roommate",
            "Two lazy slackers",
        ),
        plots=(
            "stumble into one hilarious mishap after another",
            "throw the wildest party of the year and wreck the house",
            "accidentally swap lives in a goofy body-switch mix-up",
            "pull outrageous pranks on their annoying boss",
            "go on a disastrous road trip full of slapstick gags",
        ),
        details=(
            "in a laugh-out-loud comedy of silly jokes and pratfalls",
            "with ridiculous one-liners and absurd misunderstandings",
            "in a wacky farce that will make you laugh until you cry",
            "as every embarrassing blunder gets funnier",
        ),
        queries=(
            "funny comedy that makes me laugh",
            "hilarious slapstick pranks",
            "silly feel-good comedy with friends",
            "goofy road trip comedy",
        ),
    ),
    "Western": Genre(
        slug="western",
        adjectives=(
            "Dusty", "Outlaw", "Frontier", "Lonesome",
            "Rawhide", "Desperado", "Sagebrush", "Tombstone",
        ),
        nouns=(
            "Sheriff", "Gunslinger", "Saloon", "Stagecoach",
            "Ranch", "Showdown", "Bounty", "Mustang",
        ),
        subjects=(
            "A lone cowboy",
            "A retired sheriff",
            "A gang of outlaws",
            "A young rancher",
            "A bounty hunter on horseback",
        ),
        plots=(
            "rides into a lawless frontier town",
            "faces a gunslinger in a high-noon showdown",
            "robs a stagecoach loaded with gold",
            "drives cattle across the desert to Texas",
            "hunts the bandits who burned down the family ranch",
        ),
        details=(
            "in the dusty Wild West of saloons, revolvers and horses",
            "as the railroad pushes across the prairie",
            "in a gritty western of cowboys, rustlers and six-shooters",
            "under the blazing sun of the Arizona badlands",
        ),
        queries=(
            "cowboy western with gunfights",
            "wild west outlaws and sheriffs",
            "high noon showdown in a frontier town",
            "horses, saloons and bounty hunters",
        ),
    ),
    "Documentary": Genre(
        slug="documentary",
        adjectives=("Inside", "Untold", "Hidden", "Real", "Planet", "Frozen", "Deep", "Wild"),
        nouns=(
            "Oceans", "Archives", "Evidence", "Witness",
            "Ecosystems", "Chronicles", "Investigation", "Expedition",
        ),
        subjects=(
            "This documentary",
            "An award-winning investigative film",
            "A nature documentary",
            "This archival film",
            "A journalist's documentary",
        ),
        plots=(
            "follows scientists studying climate change in the Arctic",
            "investigates corruption with interviews and archival footage",
            "records the migration of whales across the oceans",
            "tells the true story of a historic labour strike",
            "examines the rise of social media through real testimony",
        ),
        details=(
            "narrated by experts and eyewitnesses",
            "with real footage filmed over ten years",
            "in an educational look at history, science and society",
            "based on real events, research and interviews",
        ),
        queries=(
            "nature documentary about wildlife",
            "true story investigative documentary",
            "documentary about history and real events",
            "science documentary about climate change",
        ),
    ),
    "Animation": Genre(
        slug="animation",
        adjectives=("Little", "Magical", "Tiny", "Bouncy", "Sparkle", "Fluffy", "Toon", "Rainbow"),
        nouns=(
            "Bunny", "Puppy Pals", "Dragon Kid", "Toy Friends",
            "Penguin", "Fairy", "Kitten", "Teddy",
        ),
        subjects=(
            "A talking cartoon bunny",
            "A brave little toy robot",
            "A family of animated penguins",
            "A curious baby dragon",
            "A clumsy cartoon kitten",
        ),
        plots=(
            "sets off on a magical adventure to find its way home",
            "learns the value of friendship with a band of singing animals",
            "saves an enchanted kingdom of colourful fairies",
            "helps lost toys escape from a playroom",
            "discovers a secret fairy-tale world beneath the forest",
        ),
        details=(
            "in a family-friendly animated film for kids",
            "with catchy songs and colourful cartoon characters",
            "in a charming hand-drawn animation for children",
            "in a Pixar-style computer-animated movie for the whole family",
        ),
        queries=(
            "animated cartoon for kids",
            "family animation with talking animals",
            "pixar style animated movie",
            "cute cartoon adventure for children",
        ),
    ),
    "Thriller": Genre(
        slug="thriller",
        adjectives=("Deadly", "Silent", "Fatal", "Double", "Hostile", "Covert", "Lethal", "Blind"),
        nouns=(
            "Conspiracy", "Target", "Hostage", "Agent",
            "Ransom", "Pursuit", "Informant", "Cover-Up",
        ),
        subjects=(
            "An undercover FBI agent",
            "A paranoid detective",
            "A former CIA assassin",
            "A hostage negotiator",
            "A whistleblower on the run",
        ),
        plots=(
            "races against the clock to stop a terrorist bomb plot",
            "uncovers a deadly government conspiracy",
            "is framed for murder and must find the real killer",
            "negotiates with ruthless kidnappers holding hostages",
            "hunts a cunning serial murderer through the city",
        ),
        details=(
            "in a suspenseful cat-and-mouse game of espionage",
            "as double-crosses and twists build unbearable tension",
            "in a gripping crime thriller of spies and betrayal",
            "while the police close in and time runs out",
        ),
        queries=(
            "suspenseful spy thriller",
            "crime thriller with a conspiracy",
            "tense detective hunting a killer",
            "espionage and undercover agents",
        ),
    ),
}

_SECOND_GENRE_RATE = 0.15
_SEARCH_RATE = 0.05
_FAVOURITE_RATE = 0.85  # of item events
_DISLIKE_RATE = 0.05  # of item events, always on a non-favourite genre
_POSITIVE_TYPES = (EventType.PURCHASE, EventType.CLICK, EventType.BROWSE)
_POSITIVE_WEIGHTS = (0.25, 0.40, 0.30)
_GAP_SECONDS = (2, 240)


def generate_catalog(seed: int = 7, items_per_genre: int = 30) -> list[Item]:
    """A catalog whose genre structure is obvious to an encoder; ids name the genre for debugging.

    Titles and descriptions draw only on their genre's words, so items of a genre embed close
    together; about one in seven also carries a second genre, as real catalogs do.
    """
    if items_per_genre < 0:
        raise DatasetError(f"items_per_genre must be >= 0, got {items_per_genre}")
    rng = random.Random(seed)
    names = list(GENRES)
    items: list[Item] = []
    for name in names:
        genre = GENRES[name]
        for index, base in enumerate(_titles(rng, genre, items_per_genre), start=1):
            categories = [name]
            if rng.random() < _SECOND_GENRE_RATE:
                categories.append(rng.choice([n for n in names if n != name]))
            items.append(
                Item(
                    item_id=f"syn-{genre.slug}-{index:03d}",
                    title=f"{base} ({rng.randint(1970, 2024)})",
                    description=_description(rng, genre),
                    categories=categories,
                    op="upsert",
                )
            )
    return items


def favourite_genres(seed: int = 7, n_users: int = 60) -> dict[str, list[str]]:
    """Each synthetic user's ground-truth taste, the yardstick for judging recommendations.

    Drawn from its own generator so it depends only on (seed, n_users), never on the catalog.
    """
    rng = random.Random(f"favourites-{seed}")
    names = list(GENRES)
    return {
        _user_id(u): rng.sample(names, 1 if rng.random() < 0.6 else 2) for u in range(n_users)
    }


def generate_events(
    items: list[Item],
    seed: int = 7,
    n_users: int = 60,
    events_per_user: int = 25,
    start_ts: int = 1_700_000_000_000,
) -> list[Event]:
    """A replayable interaction stream with known taste: users interleave in one global clock."""
    if not items and n_users and events_per_user:
        raise DatasetError(
            "generate_events needs a non-empty catalog; call generate_catalog() first"
        )
    if n_users < 0 or events_per_user < 0 or start_ts < 0:
        raise DatasetError("n_users, events_per_user and start_ts must all be >= 0")
    rng = random.Random(seed)
    favourites = favourite_genres(seed, n_users)
    pools = {user: _pools(items, genres) for user, genres in favourites.items()}
    remaining = {user: events_per_user for user in favourites if events_per_user}
    events: list[Event] = []
    ts = start_ts
    while remaining:
        users = list(remaining)
        user = rng.choices(users, weights=[remaining[u] for u in users])[0]
        event_id = f"syn-{seed}-{len(events)}"
        events.append(_event(rng, pools[user], favourites[user], user, event_id, ts))
        remaining[user] -= 1
        if not remaining[user]:
            del remaining[user]
        ts += rng.randint(*_GAP_SECONDS) * 1000 + rng.randint(0, 999)
    return events


def _pools(items: list[Item], favourites: list[str]) -> tuple[list[Item], list[Item]]:
    """(liked, other): items whose main genre is a favourite, and items with no favourite genre.

    Items that only touch a favourite through their second genre are in neither, so "liked" and
    "disliked" stay unambiguous. A custom catalog may lack a genre: fall back to every item.
    """
    liked = [i for i in items if i.categories and i.categories[0] in favourites]
    other = [i for i in items if not set(i.categories) & set(favourites)]
    return liked or items, other or items


def _event(
    rng: random.Random,
    pools: tuple[list[Item], list[Item]],
    favourites: list[str],
    user: str,
    event_id: str,
    ts: int,
) -> Event:
    if rng.random() < _SEARCH_RATE:
        query = rng.choice(GENRES[rng.choice(favourites)].queries)
        return Event(event_id=event_id, user_id=user, type=EventType.SEARCH, query=query, ts=ts)
    liked, other = pools
    if rng.random() < _DISLIKE_RATE:
        kind, pool = EventType.DISLIKE, other
    else:
        kind = rng.choices(_POSITIVE_TYPES, weights=_POSITIVE_WEIGHTS)[0]
        # dislikes already account for some non-favourite events; top the rest up to the target
        favourite_share = _FAVOURITE_RATE / (1 - _DISLIKE_RATE)
        pool = liked if rng.random() < favourite_share else other
    item = rng.choice(pool)
    return Event(event_id=event_id, user_id=user, type=kind, item_id=item.item_id, ts=ts)


def _titles(rng: random.Random, genre: Genre, count: int) -> list[str]:
    """Distinct titles: every adjective-noun pair once, then numbered sequels if more are needed."""
    pairs = [f"{a} {n}" for a, n in itertools.product(genre.adjectives, genre.nouns)]
    rng.shuffle(pairs)
    titles = pairs[:count]
    for sequel in itertools.count(2):
        if len(titles) >= count:
            break
        titles.extend(f"{p} {sequel}" for p in pairs[: count - len(titles)])
    return titles


def _description(rng: random.Random, genre: Genre) -> str:
    return f"{rng.choice(genre.subjects)} {rng.choice(genre.plots)} {rng.choice(genre.details)}."


def _user_id(index: int) -> str:
    return f"syn-user-{index:03d}"
