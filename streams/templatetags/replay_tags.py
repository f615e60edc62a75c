"""Template tags for the video partials, so any room page can include them.

{% load replay_tags %}
{% player_config room as player %}        JSON for static/streams/player.js
{% product_moments room as moments %}     the replay's product moments
"""

from django import template

from streams import replay
from streams.models import Room

register = template.Library()


@register.simple_tag
def product_moments(room: Room) -> list[replay.ProductMoment]:
    if not isinstance(room, Room):
        return []
    return replay.product_moments(room=room)


@register.simple_tag
def player_config(room: Room) -> dict:
    return replay.player_config(room=room)
