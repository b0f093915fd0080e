"""Published Chinese tariffs, each checked against a hand calculation written here.

Sources are cited in the example YAML files (pipeline/billing/examples/).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from contracts.money import round_fen
from pipeline.billing.rating import Usage, rate
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tier_state import TierState

SH = ZoneInfo("Asia/Shanghai")


def test_beijing_residential_tiers_one_month(bj_power: TariffBook) -> None:
    # 500 kWh in July 2024:
    #   240 x 0.4883 = 117.1920
    #   160 x 0.5383 =  86.1280
    #   100 x 0.7883 =  78.8300
    #                  --------
    #                  282.1500 yuan -> 28215 fen
    _, rating = rate(
        bj_power,
        None,
        Usage(datetime(2024, 7, 1, tzinfo=SH), datetime(2024, 8, 1, tzinfo=SH), Decimal(500)),
    )
    assert rating.units_by_step() == {1: 240, 2: 160, 3: 100}
    assert rating.amount == Fraction("282.15")
    assert round_fen(rating.amount) == 28215


def test_beijing_residential_tiers_across_month_end(bj_power: TariffBook) -> None:
    # 16 July 00:00 -> 16 August 00:00 (31 days), 620 kWh, state: 100 kWh used in July.
    # July share: 16 of 31 days = 620 x 16/31 = 320 kWh; August: 300 kWh.
    #   July:   140 more at step 1 (100 -> 240), 160 at step 2 (240 -> 400), 20 at step 3
    #           140 x 0.4883 + 160 x 0.5383 + 20 x 0.7883 = 68.362 + 86.128 + 15.766 = 170.256
    #   August: reset; 240 at step 1, 60 at step 2
    #           240 x 0.4883 + 60 x 0.5383 = 117.192 + 32.298 = 149.490
    #   total 319.746 yuan -> 319.75 (half-up: 0.746 -> 0.75)
    state = TierState("bj-residential", "month:2024-07", Fraction(100))
    state, rating = rate(
        bj_power,
        state,
        Usage(datetime(2024, 7, 16, tzinfo=SH), datetime(2024, 8, 16, tzinfo=SH), Decimal(620)),
    )
    assert rating.amount == Fraction("319.746")
    assert round_fen(rating.amount) == 31975
    assert state == TierState("bj-residential", "month:2024-08", Fraction(300))


def test_guangdong_commercial_tou_summer_sharp_peak(gd_tou: TariffBook) -> None:
    # One July day, 24 h, 2400 kWh at a constant 100 kW:
    #   valley 00-08         8 h  800 kWh x 0.228 = 182.40
    #   flat 08-10,12-14,19-24  9 h  900 kWh x 0.600 = 540.00
    #   peak 10-11,14-15,17-19  4 h  400 kWh x 1.020 = 408.00
    #   sharp 11-12,15-17    3 h  300 kWh x 1.275 = 382.50
    #   total 1512.90 yuan
    _, rating = rate(
        gd_tou,
        None,
        Usage(datetime(2024, 7, 10, tzinfo=SH), datetime(2024, 7, 11, tzinfo=SH), Decimal(2400)),
    )
    assert rating.units_by_band() == {"valley": 800, "flat": 900, "peak": 400, "sharp": 300}
    assert rating.amount == Fraction("1512.90")


def test_guangdong_commercial_tou_outside_summer(gd_tou: TariffBook) -> None:
    # The same day in October has no sharp band: peak 10-12,14-19 is 7 h.
    #   valley 800 x 0.228 = 182.40; flat 900 x 0.6 = 540.00; peak 700 x 1.02 = 714.00
    #   total 1436.40 yuan
    _, rating = rate(
        gd_tou,
        None,
        Usage(datetime(2024, 10, 10, tzinfo=SH), datetime(2024, 10, 11, tzinfo=SH), Decimal(2400)),
    )
    assert rating.units_by_band() == {"valley": 800, "flat": 900, "peak": 700}
    assert rating.amount == Fraction("1436.40")


def test_guangdong_band_registers_decide(gd_tou: TariffBook) -> None:
    # A four-register meter read 2024-08-01 00:00 and 2024-08-02 00:00:
    #   sharp 120.50, peak 310.25, flat 400.00, valley 169.25 (sum 1000.00 = total delta)
    #   120.50 x 1.275 = 153.6375; 310.25 x 1.02 = 316.455; 400 x 0.6 = 240; 169.25 x 0.228
    #   = 38.589; total 748.6815 yuan -> 748.68
    regs = {
        "sharp": Decimal("120.50"),
        "peak": Decimal("310.25"),
        "flat": Decimal("400.00"),
        "valley": Decimal("169.25"),
    }
    _, rating = rate(
        gd_tou,
        None,
        Usage(
            datetime(2024, 8, 1, tzinfo=SH), datetime(2024, 8, 2, tzinfo=SH), Decimal(1000), regs
        ),
    )
    assert rating.units_by_band() == {b: Fraction(v) for b, v in regs.items()}
    assert rating.amount == Fraction("748.6815")
    assert round_fen(rating.amount) == 74868


def test_beijing_water_yearly_tiers_with_sewage(bj_water: TariffBook) -> None:
    # A household that used 170 m3 by mid-November 2024 uses 30 m3 more:
    #   10 m3 at step 1 (170 -> 180): water fee 2.07, 20 m3 at step 2: water fee 4.07
    #   water fee     10 x 2.07 + 20 x 4.07 = 20.70 + 81.40 = 102.10
    #   resource fee  30 x 1.57                              =  47.10
    #   sewage        30 x 1.36                              =  40.80
    #   total 190.00 yuan = 10 x 5 + 20 x 7, the published all-in 5 / 7 yuan/m3
    state = TierState("bj-water-residential", "year:2024", Fraction(170))
    _, rating = rate(
        bj_water,
        state,
        Usage(datetime(2024, 11, 15, tzinfo=SH), datetime(2024, 12, 15, tzinfo=SH), Decimal(30)),
    )
    assert rating.units_by_step() == {1: 10, 2: 20}
    assert {s.name: s.amount for s in rating.surcharges} == {
        "water_resource": Fraction("47.10"),
        "sewage": Fraction("40.80"),
    }
    assert rating.amount == Fraction(190)


def test_beijing_water_year_reset(bj_water: TariffBook) -> None:
    # 300 m3 used in 2024; 1 Dec 2024 -> 31 Jan 2025 (62 days), 62 m3, 1 m3 a day:
    #   2024 (31 days): 31 m3 at step 3, all-in 9 yuan = 279
    #   2025 (31 days): reset, 31 m3 at step 1, all-in 5 yuan = 155
    #   total 434 yuan
    state = TierState("bj-water-residential", "year:2024", Fraction(300))
    state, rating = rate(
        bj_water,
        state,
        Usage(datetime(2024, 12, 1, tzinfo=SH), datetime(2025, 2, 1, tzinfo=SH), Decimal(62)),
    )
    assert rating.amount == 434
    assert state == TierState("bj-water-residential", "year:2025", Fraction(31))
