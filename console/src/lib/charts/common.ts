/** What every chart shares: the palette and how a series is labelled. */
export const PALETTE = ["#409eff", "#67c23a", "#e6a23c", "#f56c6c", "#909399", "#9b59b6",
                        "#1abc9c", "#34495e"];

/** Names of series and axes in the operator's language. */
export type Label = (key: string) => string;
