"""Boilerplate documents: cookie notices, licences, footers rendered from a few templates with small
variable fields, the kind of text a near-duplicate detector should collapse. One template is one planted
duplicate group."""

from __future__ import annotations

import numpy as np

from corpuslab.sources.synthetic.grammar import coin
from corpuslab.sources.synthetic.sampler import BOILERPLATE_TEMPLATE_STREAM, Sampler
from corpuslab.sources.synthetic.vocabulary import split_words

BOILERPLATE_CATEGORY = "boilerplate"

# {site}, {org}, {email}, {year} are fixed per template; {date}, {count}, {ref}, {holder} vary per document.
BOILERPLATE_BODIES = (
    (
        "Cookie Notice for {site}\n\n"
        "We use cookies and similar technologies to give you the best possible experience on {site}. "
        "Some cookies are necessary for the site to work, while others help us understand how visitors "
        "use our pages, remember your preferences, and show you content that may interest you. By "
        "clicking Accept All you agree to the storing of cookies on your device. You can change your "
        "choice at any time by visiting the Cookie Settings page linked at the bottom of every page. "
        "For more information about how {org} uses your data, please read our Privacy Policy or "
        "contact us at {email}. Necessary cookies cannot be switched off because the site would not "
        "work without them. Analytics cookies are only set if you allow them. This notice was last "
        "updated on {date}.\n\n"
        "Accept All | Reject All | Cookie Settings"
    ),
    (
        "Subscribe to the {org} newsletter\n\n"
        "Join {count} readers who get our best stories delivered to their inbox every week. We will "
        "never share your email address and you can unsubscribe at any time with a single click. Enter "
        "your email address below and press Subscribe to confirm.\n\n"
        "Home | News | Features | Reviews | Events | Shop | About Us | Contact | Careers | "
        "Advertise\n\n"
        "Follow {org} on social media for daily updates. Questions about your subscription? Write to "
        "{email} and our team will get back to you within two working days.\n\n"
        "Copyright {year} {org}. All rights reserved. Reproduction of any material on {site} without "
        "written permission is prohibited. Terms of Use | Privacy Policy | Accessibility | Sitemap"
    ),
    (
        "Permission notice\n\n"
        "Copyright (c) {holder} and the {org} contributors.\n\n"
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software "
        "and associated documentation files, to deal in the software without restriction, including "
        "without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
        "and sell copies of the software, and to permit persons to whom the software is furnished to "
        "do so, subject to the following conditions. The above copyright notice and this permission "
        "notice shall be included in all copies or substantial portions of the software. The software "
        "is provided as is, without warranty of any kind, express or implied, including but not "
        "limited to the warranties of merchantability, fitness for a particular purpose and "
        "noninfringement. In no event shall the authors or copyright holders be liable for any claim, "
        "damages or other liability, whether in an action of contract, tort or otherwise, arising "
        "from, out of or in connection with the software or the use or other dealings in the software."
    ),
    (
        "Terms of Use\n\n"
        "These terms were last revised on {date}. By accessing or using {site} you agree to be bound "
        "by these terms and by our Privacy Policy. If you do not agree, please do not use the site. "
        "{org} may change these terms at any time, and the revised terms take effect as soon as they "
        "are posted. You are responsible for keeping your account details confidential and for all "
        "activity that happens under your account. You may not copy, resell or exploit any part of the "
        "service without our express written permission. The service is provided on an as available "
        "basis and we do not promise that it will be uninterrupted or free of errors. To the extent "
        "permitted by law, {org} is not liable for any indirect or consequential loss. These terms are "
        "governed by the laws of the country in which {org} is registered. Questions about these terms "
        "can be sent to {email}."
    ),
    (
        "Your data request\n\n"
        "Thank you for contacting {org}. We have received your request to access the personal data we "
        "hold about you and have given it the reference number {ref}. Under data protection law we "
        "must respond within one month of receiving your request, although we may extend this period "
        "if your request is complex. To protect your privacy we may ask you to confirm your identity "
        "before we release any information. You have the right to ask us to correct data that is "
        "wrong, to delete data we no longer need, and to object to certain kinds of processing. If you "
        "are not satisfied with our answer you can complain to your local data protection authority. "
        "Please quote your reference number in any reply to {email}. This message was sent "
        "automatically, so please do not reply to it directly."
    ),
    (
        "Page not found\n\n"
        "Sorry, we could not find the page you were looking for on {site}. It may have been moved, "
        "renamed or deleted, or the link you followed may be broken. Please check the address for "
        "typing mistakes, or use the search box below to find what you need. You can also return to "
        "the home page or browse our most popular sections from the menu.\n\n"
        "Home | Latest | Popular | Archive | Search | Help | Contact\n\n"
        "Error reference {ref} logged on {date}. If the problem continues, write to {email} and quote "
        "the error reference.\n\n"
        "Copyright {year} {org}. All rights reserved."
    ),
)
_ORG_WORDS = ("Media", "Labs", "Group", "Digital", "Press", "Systems", "Studio", "Network")
_SITE_SUFFIXES = (".com", ".net", ".org", ".io")
_BOILERPLATE_SYLLABLES = split_words(
    "al ber cor dan el fen gal hil ion jor kel lum nor pel quin ros tev ul var wen"
)


def boilerplate_template(template: int, seed: int) -> str:
    """Body `template` with its per-template fields (site, organisation, email, year) filled.

    There is one template per body, never two from the same body: those would differ only in a few names
    and be near duplicates of each other across groups, which would blur the ground truth.
    """
    sampler = Sampler(np.random.default_rng([seed, BOILERPLATE_TEMPLATE_STREAM, template]))
    name = coin(sampler, _BOILERPLATE_SYLLABLES)
    site = name + sampler.choice(_SITE_SUFFIXES)
    fixed = {
        "site": site,
        "org": f"{name.capitalize()} {sampler.choice(_ORG_WORDS)}",
        "email": f"help@{site}",
        "year": str(sampler.integer(2008, 2024)),
    }
    body = BOILERPLATE_BODIES[template]
    for key, value in fixed.items():
        body = body.replace("{" + key + "}", value)
    return body


def render_boilerplate(template_text: str, rng: np.random.Generator) -> str:
    """One instance: the per-document fields are single tokens, as in real notices (a date, an id)."""
    sampler = Sampler(rng)
    variable = {
        "date": f"{sampler.integer(2015, 2024)}-{sampler.integer(1, 12):02d}-{sampler.integer(1, 28):02d}",
        "count": f"{sampler.integer(1000, 250000):,}",
        "ref": f"REF-{sampler.integer(100000, 999999)}",
        "holder": f"{sampler.integer(2010, 2024)} {coin(sampler, _BOILERPLATE_SYLLABLES).capitalize()}",
    }
    for key, value in variable.items():
        template_text = template_text.replace("{" + key + "}", value)
    return template_text


def boilerplate_group(template: int) -> str:
    """The `truth_source` shared by every document rendered from one boilerplate template."""
    return f"boilerplate-{template:02d}"

