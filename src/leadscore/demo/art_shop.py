"""The online art-supply shop's customers (B2C): who they are and what they do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leadscore.demo import vocab as v

if TYPE_CHECKING:
    from leadscore.demo.world import Builder, Persona

DAY = 86_400_000_000
# The weekly newsletter: (email_id, topic, days before as_of it was sent).
NEWSLETTER_DAYS = tuple(range(116, 0, -7))


def _campaigns(b: Builder) -> list[tuple[str, str, int]]:
    return [(f"art-nl-{n:02d}", v.ART_TOPICS[n % len(v.ART_TOPICS)],
             b.as_of - days * DAY + 9 * 3_600_000_000)
            for n, days in enumerate(NEWSLETTER_DAYS, start=1)]


def _consumer(b: Builder, lead_id: str, *, ages: tuple[int, int], p_birthday: float,
              occupation: str | None = None, p_creative: float = 0.3,
              domain: str | None = None, p_email: float = 1.0, **extra: Any) -> dict[str, Any]:
    rng = b.rng
    persona = str(extra.pop("persona", ""))
    first, last = rng.choice(v.FIRST_NAMES), rng.choice(v.LAST_NAMES)
    city, country = rng.choice(v.CITIES)
    age = rng.randint(*ages)
    birthday = None
    if rng.random() < p_birthday:
        birthday = f"{2026 - age:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if occupation is None:
        occupation = rng.choice(v.CREATIVE_OCCUPATIONS if rng.random() < p_creative
                                else v.OTHER_OCCUPATIONS)
    email = None
    if rng.random() < p_email:
        email = f"{first}.{last}{rng.randint(1, 99)}@{domain or rng.choice(v.FREE_MAIL)}".lower()
    traits = {"lead_id": lead_id, "segment": "consumer", "email": email, "first_name": first,
              "last_name": last, "city": city, "country": country, "age": age,
              "birthday": birthday, "occupation": occupation, **extra}
    b.add_lead("art-shop", persona, traits)
    return traits


def _browse(b: Builder, lead_id: str, sessions: int, newest: float, oldest: float,
            views: tuple[int, int] = (1, 4), extra_pages: tuple[str, ...] = ()) -> None:
    pages = (*v.ART_PRODUCTS, *extra_pages)
    for _ in range(sessions):
        b.session(lead_id, b.some_day(newest, oldest), pages, b.rng.randint(*views))


def _subscribe(b: Builder, lead_id: str, days_ago: tuple[float, float]) -> int:
    at = b.some_day(*days_ago)
    b.track(lead_id, at, "Newsletter Subscribed")
    return at


def _order(b: Builder, lead_id: str, at: int) -> None:
    b.track(lead_id, at, "Order Completed", revenue=round(b.rng.uniform(18, 240), 2),
            product=b.rng.choice(v.ART_PRODUCTS).rsplit("/", 1)[-1])


def ready_buyer(b: Builder, lead_id: str) -> None:
    """Right age, gave a birthday, browsing hard in the last weeks, found a store."""
    _consumer(b, lead_id, ages=(25, 44), p_birthday=0.9, p_creative=0.6, persona="ready buyer")
    since = _subscribe(b, lead_id, (30, 110)) if b.rng.random() < 0.8 else b.as_of
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.7, p_click=0.35)
    _browse(b, lead_id, b.rng.randint(6, 12), 1, 25, views=(2, 5))
    if b.rng.random() < 0.85:
        b.page(lead_id, b.some_day(1, 10), b.rng.choice(v.ART_STORES))
    for _ in range(b.rng.randint(1, 3)):
        b.track(lead_id, b.some_day(1, 10), "Product Added",
                product=b.rng.choice(v.ART_PRODUCTS).rsplit("/", 1)[-1])


def window_shopper(b: Builder, lead_id: str) -> None:
    """Drops by now and then, looks at a few products, rarely signs up."""
    _consumer(b, lead_id, ages=(18, 75), p_birthday=0.35, p_email=0.7,
              persona="window shopper")
    _browse(b, lead_id, b.rng.randint(1, 5), 1, 119, views=(1, 3), extra_pages=v.ART_PAGES)
    if b.rng.random() < 0.08:
        b.page(lead_id, b.some_day(1, 119), b.rng.choice(v.ART_STORES))


def newsletter_only(b: Builder, lead_id: str) -> None:
    """Subscribed once, reads some newsletters, hardly visits; a few unsubscribe."""
    _consumer(b, lead_id, ages=(20, 75), p_birthday=0.5, persona="newsletter only")
    since = _subscribe(b, lead_id, (40, 119))
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.45, p_click=0.08)
    if b.rng.random() < 0.1:
        b.track(lead_id, b.some_day(1, 30), "Unsubscribed")


def lapsed_customer(b: Builder, lead_id: str) -> None:
    """Bought three to four months ago; quiet since."""
    _consumer(b, lead_id, ages=(28, 70), p_birthday=0.6, persona="lapsed customer")
    since = _subscribe(b, lead_id, (110, 119))
    for _ in range(b.rng.randint(1, 2)):
        _order(b, lead_id, b.some_day(85, 118))
    b.campaign_mail(lead_id, since, _campaigns(b)[:4], p_open=0.4, p_click=0.1)
    if b.rng.random() < 0.3:
        _browse(b, lead_id, 1, 60, 90)


def loyal_customer(b: Builder, lead_id: str) -> None:
    """Orders every month, reads the newsletter, writes reviews."""
    _consumer(b, lead_id, ages=(25, 64), p_birthday=0.9, p_creative=0.6,
              persona="loyal customer")
    since = _subscribe(b, lead_id, (112, 119))
    day = b.rng.uniform(100, 115)
    while day > 1:
        _order(b, lead_id, b.moment(day))
        day -= b.rng.uniform(20, 35)
    if b.rng.random() < 0.7:
        b.track(lead_id, b.some_day(5, 60), "Review Written", product=b.rng.choice(
            v.ART_PRODUCTS).rsplit("/", 1)[-1])
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.65, p_click=0.3)
    _browse(b, lead_id, b.rng.randint(4, 9), 1, 110, views=(1, 4))


def student(b: Builder, lead_id: str) -> None:
    """Loves art supplies, browses a lot, buys little: not who the shop markets to."""
    occupation = "Student" if b.rng.random() < 0.3 else "student"
    _consumer(b, lead_id, ages=(18, 26), p_birthday=0.5, occupation=occupation,
              domain="students.uni.example", persona="student")
    since = _subscribe(b, lead_id, (20, 100))
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.5, p_click=0.2)
    _browse(b, lead_id, b.rng.randint(5, 12), 1, 40, views=(2, 5))
    if b.rng.random() < 0.5:
        b.page(lead_id, b.some_day(1, 20), b.rng.choice(v.ART_STORES))


def job_seeker(b: Builder, lead_id: str) -> None:
    """Came through a job alert; reads the careers pages."""
    _consumer(b, lead_id, ages=(20, 45), p_birthday=0.3, lead_source="careers",
              persona="job seeker")
    for _ in range(b.rng.randint(2, 6)):
        b.session(lead_id, b.some_day(1, 30), v.ART_CAREERS, b.rng.randint(1, 3))
    if b.rng.random() < 0.5:
        b.page(lead_id, b.some_day(1, 30), "/about")


def competitor(b: Builder, lead_id: str) -> None:
    """A rival shop watching prices and ranges, every week."""
    _consumer(b, lead_id, ages=(28, 55), p_birthday=0.3, occupation="shop owner",
              domain=b.rng.choice(v.ART_COMPETITOR_DOMAINS), persona="competitor")
    since = _subscribe(b, lead_id, (90, 119))
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.95, p_click=0.3)
    _browse(b, lead_id, b.rng.randint(10, 20), 1, 119, views=(3, 6),
            extra_pages=("/sale", "/sale", "/stores"))


PERSONAS: dict[str, Persona] = {
    "ready buyer": ready_buyer, "window shopper": window_shopper,
    "newsletter only": newsletter_only, "lapsed customer": lapsed_customer,
    "loyal customer": loyal_customer, "student": student, "job seeker": job_seeker,
    "competitor": competitor,
}
MIX = (("ready buyer", 0.10), ("window shopper", 0.30), ("newsletter only", 0.22),
       ("lapsed customer", 0.09), ("loyal customer", 0.08), ("student", 0.10),
       ("job seeker", 0.06), ("competitor", 0.05))
