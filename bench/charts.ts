/**
 * The benchmarks' charts as SVG, drawn like `media/memory_chart.ts`: a scatter of numbered points
 * with a legend (the memory-and-time trade-off of the memory hooks) and lines over a logarithmic
 * or linear x axis (overhead against sequence length).
 *
 * @module
 */

const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1"];

/** A labelled point. */
export interface ChartPoint {
  /** Label drawn beside the point. */
  label: string;
  /** X value. */
  x: number;
  /** Y value. */
  y: number;
}

/** A scatter chart of labelled points. */
export interface ScatterChartInput {
  /** Title above the chart. */
  title: string;
  /** Line under the title. */
  subtitle?: string;
  /** X axis caption. */
  xLabel: string;
  /** Y axis caption. */
  yLabel: string;
  /** The points. */
  points: ChartPoint[];
  /** Tick text of an x value. */
  formatX: (x: number) => string;
  /** Tick text of a y value. */
  formatY: (y: number) => string;
}

/** A line of a line chart. */
export interface ChartSeries {
  /** Legend text. */
  name: string;
  /** Points in x order. */
  points: { x: number; y: number }[];
  /** Dashed line. */
  dashed?: boolean;
}

/** A line chart. */
export interface LineChartInput {
  /** Title above the chart. */
  title: string;
  /** Line under the title. */
  subtitle?: string;
  /** X axis caption. */
  xLabel: string;
  /** Y axis caption. */
  yLabel: string;
  /** Logarithmic x axis. */
  logX?: boolean;
  /** The lines. */
  series: ChartSeries[];
  /** Horizontal reference lines (a target, say), red unless given a color. */
  guides?: { y: number; label: string; color?: string }[];
  /** A vertical marker (a crossover, say). */
  marker?: { x: number; label: string };
  /** Tick text of an x value. */
  formatX: (x: number) => string;
  /** Tick text of a y value. */
  formatY: (y: number) => string;
}

const WIDTH = 760;
const HEIGHT = 450;
const LEFT = 80;
const RIGHT = 30;
const TOP = 76;
const BOTTOM = 60;
/** Width of the scatter chart's legend, right of the plot. */
const LEGEND = 260;

/** Renders a scatter chart as SVG text: numbered points, with a legend on the right. */
export function scatterChartSvg(input: ScatterChartInput): string {
  const xs = input.points.map((point) => point.x);
  const ys = input.points.map((point) => point.y);
  const xMax = Math.max(1e-9, ...xs) * 1.15;
  const yMax = Math.max(1e-9, ...ys) * 1.15;
  const x = (value: number) => LEFT + (value / xMax) * (WIDTH - LEFT - RIGHT);
  const y = (value: number) => HEIGHT - BOTTOM - (value / yMax) * (HEIGHT - TOP - BOTTOM);
  const parts = frame(input.title, input.subtitle, input.xLabel, input.yLabel, WIDTH + LEGEND);
  for (let i = 0; i <= 5; i++) {
    parts.push(...xTick(x((xMax / 5) * i), input.formatX((xMax / 5) * i)));
    parts.push(...yTick(y((yMax / 5) * i), input.formatY((yMax / 5) * i)));
  }
  input.points.forEach((point, index) => {
    const color = COLORS[index % COLORS.length];
    const px = x(point.x);
    const py = y(point.y);
    const text = `${point.label}: ${input.formatX(point.x)}, ${input.formatY(point.y)}`;
    parts.push(
      `<circle cx="${px.toFixed(1)}" cy="${
        py.toFixed(1)
      }" r="7" fill="${color}" opacity="0.85"><title>${escape(text)}</title></circle>`,
      `<text x="${px.toFixed(1)}" y="${
        (py + 4).toFixed(1)
      }" text-anchor="middle" fill="white" font-weight="bold">${index + 1}</text>`,
    );
    const legendY = TOP + 10 + index * 34;
    parts.push(
      `<circle cx="${WIDTH + 8}" cy="${legendY - 4}" r="7" fill="${color}" opacity="0.85"/>`,
      `<text x="${WIDTH + 8}" y="${legendY}" text-anchor="middle" fill="white" font-weight="bold">${
        index + 1
      }</text>`,
      `<text x="${WIDTH + 22}" y="${legendY}">${escape(point.label)}</text>`,
      `<text x="${WIDTH + 22}" y="${legendY + 14}" fill="#555">${
        escape(`${input.formatX(point.x)}, ${input.formatY(point.y)}`)
      }</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/** Renders a line chart as SVG text. */
export function lineChartSvg(input: LineChartInput): string {
  const all = input.series.flatMap((series) => series.points);
  const xValues = all.map((point) => point.x);
  const yValues = [...all.map((point) => point.y), ...(input.guides ?? []).map((g) => g.y)];
  const xMin = Math.min(...xValues);
  const xMax = Math.max(...xValues);
  const yMax = Math.max(1e-9, ...yValues) * 1.12;
  const toUnit = (value: number) =>
    input.logX
      ? (Math.log(value) - Math.log(xMin)) / Math.max(1e-9, Math.log(xMax) - Math.log(xMin))
      : (value - xMin) / Math.max(1e-9, xMax - xMin);
  const x = (value: number) => LEFT + 10 + toUnit(value) * (WIDTH - LEFT - RIGHT - 20);
  const y = (value: number) => HEIGHT - BOTTOM - (value / yMax) * (HEIGHT - TOP - BOTTOM);
  const parts = frame(input.title, input.subtitle, input.xLabel, input.yLabel);
  for (const value of [...new Set(xValues)].sort((a, b) => a - b)) {
    parts.push(...xTick(x(value), input.formatX(value)));
  }
  for (let i = 0; i <= 5; i++) {
    parts.push(...yTick(y((yMax / 5) * i), input.formatY((yMax / 5) * i)));
  }
  for (const guide of input.guides ?? []) {
    const color = guide.color ?? "#e15759";
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(guide.y).toFixed(1)}" y2="${
        y(guide.y).toFixed(1)
      }" stroke="${color}" stroke-dasharray="6 4"/>`,
      `<text x="${WIDTH - RIGHT - 4}" y="${
        (y(guide.y) - 5).toFixed(1)
      }" text-anchor="end" fill="${color}">${escape(guide.label)}</text>`,
    );
  }
  if (input.marker) {
    const mx = x(input.marker.x);
    parts.push(
      `<line x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${TOP}" y2="${
        HEIGHT - BOTTOM
      }" stroke="#59a14f" stroke-dasharray="3 3"/>`,
      `<text x="${(mx + 4).toFixed(1)}" y="${HEIGHT - BOTTOM - 6}" fill="#59a14f">${
        escape(input.marker.label)
      }</text>`,
    );
  }
  input.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length];
    const points = series.points.map((point) =>
      `${x(point.x).toFixed(1)},${y(point.y).toFixed(1)}`
    );
    parts.push(
      `<polyline points="${points.join(" ")}" fill="none" stroke="${color}" stroke-width="2"${
        series.dashed ? ' stroke-dasharray="6 4"' : ""
      }/>`,
    );
    for (const point of series.points) {
      parts.push(
        `<circle cx="${x(point.x).toFixed(1)}" cy="${
          y(point.y).toFixed(1)
        }" r="3.5" fill="${color}"><title>${
          escape(`${series.name}: ${input.formatX(point.x)}, ${input.formatY(point.y)}`)
        }</title></circle>`,
      );
    }
    // Four series share the row; fewer get 220 px each.
    const legendX = LEFT + index * Math.min(220, (WIDTH - LEFT) / input.series.length);
    const legendY = TOP - 16;
    parts.push(
      `<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY - 4}" y2="${
        legendY - 4
      }" stroke="${color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${legendX + 30}" y="${legendY}">${escape(series.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function frame(
  title: string,
  subtitle: string | undefined,
  xLabel: string,
  yLabel: string,
  width = WIDTH,
) {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
    subtitle ? `<text x="${LEFT}" y="40" fill="#555">${escape(subtitle)}</text>` : "",
    `<line x1="${LEFT}" x2="${LEFT}" y1="${TOP}" y2="${HEIGHT - BOTTOM}" stroke="#333"/>`,
    `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${HEIGHT - BOTTOM}" y2="${
      HEIGHT - BOTTOM
    }" stroke="#333"/>`,
    `<text x="${(LEFT + WIDTH - RIGHT) / 2}" y="${HEIGHT - 16}" text-anchor="middle">${
      escape(xLabel)
    }</text>`,
    `<text x="18" y="${
      (TOP + HEIGHT - BOTTOM) / 2
    }" text-anchor="middle" transform="rotate(-90 18 ${(TOP + HEIGHT - BOTTOM) / 2})">${
      escape(yLabel)
    }</text>`,
  ];
}

function xTick(px: number, text: string): string[] {
  return [
    `<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${TOP}" y2="${
      HEIGHT - BOTTOM
    }" stroke="#eee"/>`,
    `<text x="${px.toFixed(1)}" y="${HEIGHT - BOTTOM + 16}" text-anchor="middle">${
      escape(text)
    }</text>`,
  ];
}

function yTick(py: number, text: string): string[] {
  return [
    `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${py.toFixed(1)}" y2="${
      py.toFixed(1)
    }" stroke="#eee"/>`,
    `<text x="${LEFT - 6}" y="${(py + 4).toFixed(1)}" text-anchor="end">${escape(text)}</text>`,
  ];
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
