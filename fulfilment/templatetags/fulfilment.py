from django import template

from fulfilment import selectors

register = template.Library()


@register.inclusion_tag("fulfilment/_after_sales.html", takes_context=True)
def after_sales(context, order):
    """The order page's shipping details and after-sales actions (cancel, return)."""
    return {**selectors.after_sales_for_order(order=order), "request": context.get("request"),
            "csrf_token": context.get("csrf_token")}  # fmt: skip
