"""Hidden WhatsApp ids (`...@lid`) and the numbers behind them. WhatsApp names more and more
people by a hidden id; when it discloses the number (a message that carries both, a group's
member list, the engine's own store), the mapping is kept per session (`LidMapping`), every
message kept under the hidden id shows the number from then on, and its chat joins the
number's."""

from django.db import transaction

from api.phones import is_lid
from messaging.chats import chats_merge
from messaging.models import Message
from sessions_app.engines import get_engine
from sessions_app.engines.base import EngineError
from sessions_app.models import LidMapping, Session


def identity_learn(*, session_id: str, lid: str, phone_number: str) -> bool:
    """Keep that `lid` is `phone_number`'s, and rewrite what was kept under the hidden id.
    Returns whether this was news (a mapping already known costs one read)."""
    known = (LidMapping.objects.filter(session_id=session_id, lid=lid)
             .values_list("phone_number", flat=True).first())
    if known == phone_number:
        return False
    with transaction.atomic():
        LidMapping.objects.update_or_create(session_id=session_id, lid=lid,
                                            defaults={"phone_number": phone_number})
        messages = Message.objects.filter(session_id=session_id)
        messages.filter(from_number=lid).update(from_number=phone_number)
        messages.filter(chat_id=lid).update(chat_id=phone_number)
        chats_merge(session_id=session_id, old_chat_id=lid, new_chat_id=phone_number)
    return True


def phone_of_lid(*, session_id: str, lid: str) -> str | None:
    return (LidMapping.objects.filter(session_id=session_id, lid=lid)
            .values_list("phone_number", flat=True).first())


def lid_of_phone(*, session_id: str, phone_number: str) -> str | None:
    return (LidMapping.objects.filter(session_id=session_id, phone_number=phone_number)
            .order_by("-learned_at").values_list("lid", flat=True).first())


def identity_resolve(*, session: Session, address: str) -> dict:
    """`{lid, phoneNumber}` of a person named by number or hidden id: what was kept, else what
    the engine's store knows (kept from then on); either None when neither knows."""
    if is_lid(address):
        lid, phone = address, phone_of_lid(session_id=session.id, lid=address)
    else:
        lid, phone = lid_of_phone(session_id=session.id, phone_number=address), address
    if lid and phone:
        return {"lid": lid, "phoneNumber": phone}
    try:
        found = get_engine().resolve_identity(
            session.id, **({"lid": lid} if is_lid(address) else {"phone_number": phone}))
    except EngineError:
        return {"lid": lid, "phoneNumber": phone}
    if found.get("lid") and found.get("phoneNumber"):
        identity_learn(session_id=session.id, lid=found["lid"],
                       phone_number=found["phoneNumber"])
        return {"lid": found["lid"], "phoneNumber": found["phoneNumber"]}
    return {"lid": lid, "phoneNumber": phone}
