//! Value types several of Datadog's schemas share.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextAlign {
    Center,
    Left,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Comparator {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Palette {
    Blue,
    CustomBg,
    CustomImage,
    CustomText,
    GrayOnWhite,
    Grey,
    Green,
    Orange,
    Red,
    RedOnWhite,
    WhiteOnGray,
    WhiteOnGreen,
    GreenOnWhite,
    WhiteOnRed,
    WhiteOnYellow,
    YellowOnWhite,
    BlackOnLightYellow,
    BlackOnLightGreen,
    BlackOnLightRed,
}

/// A widget's own time frame (Datadog's legacy live span form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LiveSpan {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "10m")]
    TenMinutes,
    #[serde(rename = "15m")]
    FifteenMinutes,
    #[serde(rename = "30m")]
    ThirtyMinutes,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "4h")]
    FourHours,
    #[serde(rename = "1d")]
    OneDay,
    #[serde(rename = "2d")]
    TwoDays,
    #[serde(rename = "1w")]
    OneWeek,
    #[serde(rename = "1mo")]
    OneMonth,
    #[serde(rename = "3mo")]
    ThreeMonths,
    #[serde(rename = "6mo")]
    SixMonths,
    #[serde(rename = "week_to_date")]
    WeekToDate,
    #[serde(rename = "month_to_date")]
    MonthToDate,
    #[serde(rename = "1y")]
    OneYear,
    #[serde(rename = "alert")]
    Alert,
}
