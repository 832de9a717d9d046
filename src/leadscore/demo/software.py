"""The software vendor's prospects (B2B): people at companies, and what they do on the site."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leadscore.demo import vocab as v

if TYPE_CHECKING:
    from leadscore.demo.world import Builder, Persona

DAY = 86_400_000_000
HOUR = 3_600_000_000
# The fortnightly product newsletter: (email_id, topic, days before as_of it was sent).
NEWSLETTER_DAYS = tuple(range(115, 0, -14))


def _campaigns(b: Builder) -> list[tuple[str, str, int]]:
    return [(f"sw-nl-{n:02d}", v.SOFTWARE_TOPICS[n % len(v.SOFTWARE_TOPICS)],
             b.as_of - days * DAY + 14 * HOUR)
            for n, days in enumerate(NEWSLETTER_DAYS, start=1)]


def _company(b: Builder, *, target: float, employees: tuple[int, int]) -> dict[str, Any]:
    rng = b.rng
    name = f"{rng.choice(v.COMPANY_PARTS[0])} {rng.choice(v.COMPANY_PARTS[1])}"
    staff = int(round(rng.uniform(*employees), -1 if employees[1] > 100 else 0))
    industry = rng.choice(v.INDUSTRIES_TARGET if rng.random() < target else v.INDUSTRIES_OTHER)
    drawn = {"company": name, "account.name": name, "account.industry": industry,
             "account.employees": max(staff, 2),
             "account.revenue": int(round(staff * rng.uniform(80_000, 260_000), -5))}
    return dict(b.companies.setdefault(name, drawn))


def _person(b: Builder, lead_id: str, persona: str, company: dict[str, Any], *,
            seniority: tuple[tuple[str, float], ...], domain: str | None = None,
            p_free_mail: float = 0.0, **extra: Any) -> dict[str, Any]:
    rng = b.rng
    first, last = rng.choice(v.FIRST_NAMES), rng.choice(v.LAST_NAMES)
    city, country = rng.choice(v.CITIES)
    level = rng.choices([s for s, _ in seniority], [w for _, w in seniority])[0]
    if domain is None:
        domain = (rng.choice(v.FREE_MAIL) if rng.random() < p_free_mail
                  else company["company"].lower().replace(" ", "") + ".example")
    traits = {"lead_id": lead_id, "segment": "business",
              "email": f"{first}.{last}@{domain}".lower(), "first_name": first,
              "last_name": last, "city": city, "country": country, "seniority": level,
              "job_title": rng.choice(v.SENIORITY_TITLES.get(level, ("Consultant",))),
              **company, **extra}
    b.add_lead("software", persona, traits)
    return traits


BUYERS = (("c-level", 0.15), ("vp", 0.3), ("director", 0.35), ("manager", 0.2))
ANYONE = (("c-level", 0.05), ("vp", 0.1), ("director", 0.2), ("manager", 0.3),
          ("individual contributor", 0.35))


def _visits(b: Builder, lead_id: str, pages: tuple[str, ...], sessions: int, newest: float,
            oldest: float, views: tuple[int, int] = (1, 3)) -> None:
    for _ in range(sessions):
        b.session(lead_id, b.some_day(newest, oldest), pages, b.rng.randint(*views))


def _subscribe(b: Builder, lead_id: str, newest: float, oldest: float) -> int:
    at = b.some_day(newest, oldest)
    b.track(lead_id, at, "Newsletter Subscribed")
    return at


def _webinar(b: Builder, lead_id: str, newest: float, oldest: float) -> int:
    at = b.some_day(newest, oldest)
    topic = b.rng.choice(v.WEBINAR_TOPICS)
    b.track(lead_id, at - 3 * DAY, "Webinar Registered", topic=topic)
    b.track(lead_id, at, "Webinar Attended", topic=topic)
    return at


def _contract(b: Builder, lead_id: str, at: int) -> None:
    plan, price = b.rng.choice(v.PLANS)
    b.track(lead_id, at, "Contract Signed", plan=plan, revenue=float(price))


def ready_buyer(b: Builder, lead_id: str) -> None:
    """A decision maker at a well-fitting company: pricing, a webinar, a demo, a trial."""
    company = _company(b, target=0.85, employees=(200, 5000))
    _person(b, lead_id, "ready buyer", company, seniority=BUYERS)
    if b.rng.random() < 0.6:
        since = _subscribe(b, lead_id, 20, 90)
        b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.7, p_click=0.4)
    _visits(b, lead_id, v.SOFTWARE_BLOG, b.rng.randint(1, 3), 20, 80)
    _visits(b, lead_id, v.SOFTWARE_PRICING, b.rng.randint(3, 6), 1, 14, views=(1, 2))
    _visits(b, lead_id, (*v.SOFTWARE_CASES, *v.SOFTWARE_DOCS), b.rng.randint(2, 4), 1, 20)
    if b.rng.random() < 0.7:
        _webinar(b, lead_id, 5, 40)
    demo_at = b.some_day(2, 10)
    if b.rng.random() < 0.8:
        b.track(lead_id, demo_at, "Demo Requested")
        if b.rng.random() < 0.35:
            b.track(lead_id, demo_at + 2 * DAY, "Meeting Booked")
            if b.rng.random() < 0.4:
                b.track(lead_id, demo_at + 3 * DAY, "Opportunity Created")
    if b.rng.random() < 0.5:
        b.track(lead_id, b.some_day(1, 14), "Trial Started", plan="business")


def window_shopper(b: Builder, lead_id: str) -> None:
    """Reads the blog, glances at the product, sometimes at pricing."""
    company = _company(b, target=0.4, employees=(5, 20000))
    _person(b, lead_id, "window shopper", company, seniority=ANYONE, p_free_mail=0.2)
    _visits(b, lead_id, (*v.SOFTWARE_BLOG, *v.SOFTWARE_PAGES), b.rng.randint(1, 5), 1, 119)
    if b.rng.random() < 0.3:
        b.page(lead_id, b.some_day(1, 119), "/pricing")


def newsletter_only(b: Builder, lead_id: str) -> None:
    """Gets the newsletter, opens some, registers for a webinar and does not come."""
    company = _company(b, target=0.5, employees=(10, 8000))
    _person(b, lead_id, "newsletter only", company, seniority=ANYONE, p_free_mail=0.1)
    since = _subscribe(b, lead_id, 40, 119)
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.45, p_click=0.1)
    if b.rng.random() < 0.2:
        b.track(lead_id, b.some_day(5, 60), "Webinar Registered",
                topic=b.rng.choice(v.WEBINAR_TOPICS))
    if b.rng.random() < 0.08:
        b.track(lead_id, b.some_day(1, 30), "Unsubscribed")


def lapsed_customer(b: Builder, lead_id: str) -> None:
    """Signed four months ago; quiet since, and some have cancelled."""
    company = _company(b, target=0.8, employees=(50, 3000))
    _person(b, lead_id, "lapsed customer", company, seniority=BUYERS)
    signed = b.some_day(100, 118)
    _contract(b, lead_id, signed)
    b.session(lead_id, signed + DAY, v.SOFTWARE_DOCS, 3)
    if b.rng.random() < 0.4:
        b.track(lead_id, b.some_day(20, 60), "Subscription Cancelled")


def loyal_customer(b: Builder, lead_id: str) -> None:
    """Uses the product every week (docs), attends webinars, recommends it."""
    company = _company(b, target=0.85, employees=(100, 5000))
    _person(b, lead_id, "loyal customer", company, seniority=BUYERS)
    _contract(b, lead_id, b.some_day(105, 118))
    since = _subscribe(b, lead_id, 100, 104)
    b.campaign_mail(lead_id, since, _campaigns(b), p_open=0.6, p_click=0.25)
    _visits(b, lead_id, v.SOFTWARE_DOCS, b.rng.randint(5, 12), 1, 100)
    if b.rng.random() < 0.6:
        _webinar(b, lead_id, 5, 90)
    if b.rng.random() < 0.5:
        b.track(lead_id, b.some_day(2, 60), "Review Written")


def student(b: Builder, lead_id: str) -> None:
    """Writing a thesis on lead scoring: reads everything, attends webinars, starts trials."""
    company = {"company": "Technical University", "account.name": "Technical University",
               "account.industry": "education", "account.employees": 4200,
               "account.revenue": 380_000_000}
    _person(b, lead_id, "student", company, seniority=(("student", 1.0),),
            domain="student.tu.example.edu")
    b.leads[-1]["job_title"] = b.rng.choice(("Student", "MBA Student", "Working Student"))
    _visits(b, lead_id, (*v.SOFTWARE_BLOG, *v.SOFTWARE_DOCS), b.rng.randint(4, 10), 1, 60)
    _visits(b, lead_id, v.SOFTWARE_PRICING, b.rng.randint(0, 3), 1, 30)
    if b.rng.random() < 0.7:
        _webinar(b, lead_id, 3, 50)
    if b.rng.random() < 0.3:
        b.track(lead_id, b.some_day(1, 20), "Trial Started", plan="team")


def job_seeker(b: Builder, lead_id: str) -> None:
    """Applied through the careers page; reads about the company."""
    company = _company(b, target=0.5, employees=(5, 2000))
    _person(b, lead_id, "job seeker", company, seniority=(("individual contributor", 1.0),),
            p_free_mail=0.8, lead_source="careers")
    _visits(b, lead_id, v.SOFTWARE_CAREERS, b.rng.randint(2, 6), 1, 40)
    _visits(b, lead_id, ("/about", "/customers/cedar-pay", "/blog/mql-vs-sql"),
            b.rng.randint(0, 2), 1, 40)


def competitor(b: Builder, lead_id: str) -> None:
    """Works at a rival vendor: pricing, docs and webinars, often; sometimes a fake demo."""
    domain = b.rng.choice(v.SOFTWARE_COMPETITOR_DOMAINS)
    name = "RivalSoft" if domain.startswith("rival") else "LeadForge"
    company = {"company": name, "account.name": name, "account.industry": "software",
               "account.employees": 450, "account.revenue": 90_000_000}
    _person(b, lead_id, "competitor", company, seniority=BUYERS[1:], domain=domain)
    _visits(b, lead_id, (*v.SOFTWARE_PRICING, *v.SOFTWARE_DOCS, *v.SOFTWARE_PAGES),
            b.rng.randint(8, 16), 1, 119, views=(2, 5))
    _webinar(b, lead_id, 3, 60)
    if b.rng.random() < 0.3:
        b.track(lead_id, b.some_day(1, 30), "Demo Requested")


PERSONAS: dict[str, Persona] = {
    "ready buyer": ready_buyer, "window shopper": window_shopper,
    "newsletter only": newsletter_only, "lapsed customer": lapsed_customer,
    "loyal customer": loyal_customer, "student": student, "job seeker": job_seeker,
    "competitor": competitor,
}
MIX = (("ready buyer", 0.12), ("window shopper", 0.30), ("newsletter only", 0.20),
       ("lapsed customer", 0.08), ("loyal customer", 0.08), ("student", 0.08),
       ("job seeker", 0.08), ("competitor", 0.06))
