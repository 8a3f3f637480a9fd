"""Hourly prices of instance types: the catalog's dated snapshot, or live from AWS when credentials allow.

Live prices are asked for only when AWS credentials exist and the user did not ask for offline; any failure
falls back to the snapshot and the price source says so, so a plan never fails because a price API did.
Spot: the lowest current price over the region's availability zones (each zone's latest price within the last
hour), the convention of AWS's spot pricing page and of the catalog snapshot. On-demand: the price list API.
"""

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from inferform.catalog.instances import CatalogPrices, InstanceType, PriceBook, snapshot_date
from inferform.cloud.aws import PRICING_REGION, client, has_credentials, offline_requested

SPOT_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
ON_DEMAND_WORKERS = 8


class LivePrices:
    """Prices from the EC2 spot price history or the AWS price list, with the catalog filling any gap."""

    def __init__(self, endpoint_url: str | None = None, now: dt.datetime | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.now = now or dt.datetime.now(dt.UTC)
        self.source = CatalogPrices().source

    def prices(self, rows: Iterable[InstanceType], region: str, market: str) -> dict[str, float]:
        rows = list(rows)
        snapshot = CatalogPrices().prices(rows, region, market)
        types = sorted(r.type for r in rows)
        try:
            live = (self._spot(types, region) if market == "spot" else self._on_demand(types, region))
        except Exception as exc:  # botocore's errors, timeouts, no network: a plan still gets the snapshot
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            self.source = CatalogPrices(f"live {market} prices failed: {reason}").source
            return snapshot
        if not live:
            self.source = CatalogPrices(f"AWS returned no live {market} prices in {region}").source
            return snapshot
        stamp = self.now.strftime("%Y-%m-%dT%H:%MZ")
        what = "live spot price history" if market == "spot" else "live AWS price list"
        missing = len(set(snapshot) - set(live))
        self.source = f"{what} {stamp}" + (f" (catalog snapshot {snapshot_date()} for {missing} types AWS did "
                                           "not price)" if missing else "")
        return {**snapshot, **live}

    def _spot(self, types: list[str], region: str) -> dict[str, float]:
        ec2 = client("ec2", region, endpoint_url=self.endpoint_url, attempts=2, timeout_s=8)
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types, ProductDescriptions=SPOT_PRODUCTS, StartTime=self.now - dt.timedelta(hours=1),
            EndTime=self.now)
        return lowest_spot(record for page in pages for record in page.get("SpotPriceHistory", []))

    def _on_demand(self, types: list[str], region: str) -> dict[str, float]:
        from concurrent.futures import ThreadPoolExecutor

        pricing = client("pricing", PRICING_REGION, endpoint_url=self.endpoint_url, attempts=2, timeout_s=8)
        first = on_demand_price(pricing, types[0], region)  # fail fast (once) when the API is unreachable
        with ThreadPoolExecutor(ON_DEMAND_WORKERS) as pool:
            rest = list(pool.map(lambda t: on_demand_price(pricing, t, region), types[1:]))
        found = dict(zip(types, [first, *rest], strict=True))
        return {t: p for t, p in found.items() if p is not None}


def lowest_spot(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Per type, the lowest over zones of each zone's latest price (older changes in the window are history)."""
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for r in records:
        key = (r["InstanceType"], r["AvailabilityZone"])
        stamp, price = r["Timestamp"], float(r["SpotPrice"])
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, price)
    out: dict[str, float] = {}
    for (itype, _zone), (_stamp, price) in latest.items():
        out[itype] = min(price, out.get(itype, price))
    return out


def on_demand_price(pricing: Any, instance_type: str, region: str) -> float | None:
    """Linux, shared tenancy, no pre-installed software: the row AWS's on-demand page shows."""
    filters = [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in (
        ("instanceType", instance_type), ("regionCode", region), ("operatingSystem", "Linux"),
        ("tenancy", "Shared"), ("preInstalledSw", "NA"), ("capacitystatus", "Used"))]
    reply = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=10)
    for item in reply.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for offer in product.get("terms", {}).get("OnDemand", {}).values():
            for dim in offer.get("priceDimensions", {}).values():
                usd = float(dim.get("pricePerUnit", {}).get("USD", 0) or 0)
                if usd > 0:
                    return usd
    return None


def price_book(*, offline: bool = False, endpoint_url: str | None = None) -> PriceBook:
    """Live prices when credentials exist (found without touching the network) and offline was not asked for."""
    if offline or offline_requested() or not has_credentials():
        return CatalogPrices()
    return LivePrices(endpoint_url=endpoint_url)
