"""Acquisition: where visitors come from, derived from what a page view carries.

Pure functions, no Flask and no database: ingestion and the reports call them.

- sources: referrer / utm_source -> readable source ("Google", "Newsletter", "example.org"),
  and the stored form of a referrer (no query);
- channels: source, medium and click ids -> default channel group (GA4-style);
- utm: the utm_* parameters and ad click ids of a landing URL;
- devices: User-Agent -> device class, browser and OS;
- geo: IP address -> country (embedded registry data) or location (optional .mmdb);
- dimensions: the reports' dimension names, sentinels and filter parser.
"""

from .channels import CHANNELS, channel_of
from .devices import Device, device_of
from .dimensions import DIMENSIONS, Filter, FilterError, parse_filter
from .geo import Location, country_of, location_of
from .sources import DIRECT, referrer_of, source_of
from .utm import Utm, utm_of

__all__ = [
    "CHANNELS",
    "DIMENSIONS",
    "DIRECT",
    "Device",
    "Filter",
    "FilterError",
    "Location",
    "Utm",
    "channel_of",
    "country_of",
    "device_of",
    "location_of",
    "parse_filter",
    "referrer_of",
    "source_of",
    "utm_of",
]
