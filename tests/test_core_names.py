"""File-name grammar: real names from MAST parse; anything else does not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fgsarchive.names import looks_like_guider_file, parse_product_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jw01534002002_gs-fg_2022338021919_cal.fits", (1534, 2, 2, "fg", "2022338021919", None)),
        (
            "jw02079004001_gs-fg_2023031214828-seg001_cal.fits",
            (2079, 4, 1, "fg", "2023031214828", 1),
        ),
        (
            "jw02725387001_gs-acq1_2022207163949_cal.fits",
            (2725, 387, 1, "acq1", "2022207163949", None),
        ),
        (
            "jw01118005001_gs-fg_2022150070312-seg002_uncal.fits",
            (1118, 5, 1, "fg", "2022150070312", 2),
        ),
        ("jw00729011001_gs-id_12_image_cal.fits", (729, 11, 1, "id", None, None)),
    ],
)
def test_real_names_parse(name, expected):
    parsed = parse_product_name(name)
    assert parsed is not None
    assert (
        parsed.program,
        parsed.observation,
        parsed.visit,
        parsed.product,
        parsed.stamp,
        parsed.segment,
    ) == expected


def test_segments_share_their_guide_period():
    a = parse_product_name("jw02079004001_gs-fg_2023031214828-seg001_cal.fits")
    b = parse_product_name("jw02079004001_gs-fg_2023031214828-seg002_cal.fits")
    assert a.guide_period == b.guide_period == "jw02079004001_gs-fg_2023031214828"
    assert len(a.guide_period) == 33


@pytest.mark.parametrize(
    "name",
    [
        "../jw01534002002_gs-fg_2022338021919_cal.fits",
        "jw01534002002_gs-fg_2022338021919_cal.fits/../../x",
        "jw01534002002_guider1_cal.fits",
        "jw01534002002_gs-fg_2022338021919_stream.fits.gz",
        "jw0153400200_gs-fg_2022338021919_cal.fits",
        "jw01534002002_gs-fg_2022338021919_stream.fits",
    ],
)
def test_other_names_are_not_guider_files(name):
    assert not looks_like_guider_file(name)


_DIGITS = "0123456789"
_timed_names = st.builds(
    lambda p, o, v, product, stamp, seg, suffix: (
        f"jw{p}{o}{v}_gs-{product}_{stamp}{f'-seg{seg}' if seg else ''}_{suffix}.fits"
    ),
    st.text(_DIGITS, min_size=5, max_size=5),
    st.text(_DIGITS, min_size=3, max_size=3),
    st.text(_DIGITS, min_size=3, max_size=3),
    st.sampled_from(["acq1", "acq2", "track", "fg"]),
    st.text(_DIGITS, min_size=13, max_size=13),
    st.none() | st.text(_DIGITS, min_size=3, max_size=3),
    st.sampled_from(["cal", "uncal", "stream"]),
)


@given(st.text(max_size=80) | _timed_names)
def test_parser_never_crashes(name):
    """Any text: no exception; what parses is a plain name whose fields rebuild it exactly."""
    parsed = parse_product_name(name)
    if parsed is not None:
        assert "/" not in name and name.startswith("jw")
        rebuilt = (
            f"jw{parsed.program:05d}{parsed.observation:03d}{parsed.visit:03d}_gs-{parsed.product}"
            f"_{parsed.stamp}{f'-seg{parsed.segment:03d}' if parsed.segment is not None else ''}"
            f"_{parsed.suffix}.fits"
        )
        assert parsed.stamp is None or rebuilt == name


@given(_timed_names)
def test_every_name_of_the_grammar_parses(name):
    """The grammar's names (half of the inputs above) always parse: the round trip is exercised."""
    assert parse_product_name(name) is not None


@pytest.mark.parametrize(
    "name",
    ["jw01534002002_gs-fg_2022338021919_cal.fits\n", "jw０1534002002_gs-fg_2022338021919_cal.fits"],
)
def test_trailing_newline_and_non_ascii_digits_are_refused(name):
    assert parse_product_name(name) is None
