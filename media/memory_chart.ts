/**
 * A memory timeline as an SVG chart: resident memory over time (anonymous and file-backed,
 * stacked), the nodes as spans along the top, and which model sessions were resident below.
 *
 * @module
 */

import { formatBytes } from "../runtime/byte_size.ts";
import type { MemorySample, NodeSpan } from "../runtime/memory_monitor.ts";

/** What the chart shows. */
export interface MemoryChartInput {
  /** Title above the chart. */
  title: string;
  /** Memory samples in time order. */
  samples: readonly MemorySample[];
  /** Node spans. */
  spans: readonly NodeSpan[];
}

const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
];

/** Renders the chart as SVG text. */
export function memoryChartSvg(input: MemoryChartInput): string {
  const width = 960;
  const sessionNames = [...new Set(input.samples.flatMap((sample) => sample.sessions))];
  const longestName = Math.max(0, ...sessionNames.map((name) => name.length));
  const left = Math.min(260, Math.max(70, Math.ceil(longestName * 6.2) + 16));
  const right = 20;
  const plotWidth = width - left - right;
  const spanRows = packSpans(input.spans);
  const top = 40 + spanRows.length * 18 + 10;
  const plotHeight = 260;
  const sessionsTop = top + plotHeight + 40;
  const height = sessionsTop + sessionNames.length * 16 + 30;
  const end = Math.max(
    1,
    ...input.samples.map((sample) => sample.t),
    ...input.spans.map((span) => span.end),
  );
  const maxBytes = Math.max(1, ...input.samples.map((sample) => sample.rss)) * 1.05;
  const x = (t: number) => left + (t / end) * plotWidth;
  const y = (bytes: number) => top + plotHeight - (bytes / maxBytes) * plotHeight;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${escape(input.title)}</text>`,
  );
  spanRows.forEach((row, rowIndex) => {
    for (const span of row) {
      const color = COLORS[input.spans.indexOf(span) % COLORS.length];
      const y0 = 34 + rowIndex * 18;
      parts.push(
        `<rect x="${x(span.start).toFixed(1)}" y="${y0}" width="${
          Math.max(1, x(span.end) - x(span.start)).toFixed(1)
        }" height="14" fill="${color}" opacity="0.8"><title>${
          escape(
            `${span.node}: ${((span.end - span.start) / 1000).toFixed(2)} s, peak ${
              formatBytes(span.peak)
            }`,
          )
        }</title></rect>`,
        `<text x="${(x(span.start) + 2).toFixed(1)}" y="${y0 + 11}" fill="white">${
          escape(fit(span.node, x(span.end) - x(span.start)))
        }</text>`,
      );
    }
  });
  const area = (
    value: (sample: MemorySample) => number,
    base: (sample: MemorySample) => number,
  ) => {
    const upper = input.samples.map((sample) =>
      `${x(sample.t).toFixed(1)},${y(value(sample)).toFixed(1)}`
    );
    const lower = [...input.samples].reverse().map((sample) =>
      `${x(sample.t).toFixed(1)},${y(base(sample)).toFixed(1)}`
    );
    return [...upper, ...lower].join(" ");
  };
  // Without /proc (scoped permissions) only the total is known.
  const split = input.samples.some((sample) => sample.rssAnon + sample.rssFile > 0);
  if (input.samples.length > 0 && !split) {
    parts.push(
      `<polygon points="${
        area((s) => s.rss, () => 0)
      }" fill="#4e79a7" opacity="0.7"><title>resident memory</title></polygon>`,
    );
  } else if (input.samples.length > 0) {
    parts.push(
      `<polygon points="${
        area((s) => s.rssAnon, () => 0)
      }" fill="#4e79a7" opacity="0.7"><title>anonymous memory</title></polygon>`,
      `<polygon points="${
        area((s) => s.rssAnon + s.rssFile, (s) => s.rssAnon)
      }" fill="#a0cbe8" opacity="0.8"><title>file-backed memory</title></polygon>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const bytes = (maxBytes / 4) * i;
    parts.push(
      `<line x1="${left}" x2="${left + plotWidth}" y1="${y(bytes).toFixed(1)}" y2="${
        y(bytes).toFixed(1)
      }" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${(y(bytes) + 4).toFixed(1)}" text-anchor="end">${
        formatBytes(bytes)
      }</text>`,
    );
  }
  for (let i = 0; i <= 5; i++) {
    const t = (end / 5) * i;
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${top + plotHeight + 16}" text-anchor="middle">${
        (t / 1000).toFixed(1)
      } s</text>`,
    );
  }
  parts.push(
    `<text x="${left + plotWidth}" y="${top - 4}" text-anchor="end" fill="#555">${
      split ? "resident memory: anonymous (dark), file-backed (light)" : "resident memory"
    }</text>`,
    `<text x="${left}" y="${sessionsTop - 8}" fill="#555">sessions resident</text>`,
  );
  sessionNames.forEach((name, index) => {
    const rowY = sessionsTop + index * 16;
    parts.push(
      `<text x="${left - 6}" y="${rowY + 10}" text-anchor="end">${
        escape(fit(name, left - 10))
      }</text>`,
    );
    let runStart: number | undefined;
    input.samples.forEach((sample, i) => {
      const present = sample.sessions.includes(name);
      if (present && runStart === undefined) runStart = sample.t;
      const last = i === input.samples.length - 1;
      if (runStart !== undefined && (!present || last)) {
        parts.push(
          `<rect x="${x(runStart).toFixed(1)}" y="${rowY}" width="${
            Math.max(1, x(sample.t) - x(runStart)).toFixed(1)
          }" height="12" fill="${COLORS[(index + 3) % COLORS.length]}"/>`,
        );
        runStart = undefined;
      }
    });
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/** Puts spans in rows so that spans in one row do not overlap (concurrent nodes go lower). */
function packSpans(spans: readonly NodeSpan[]): NodeSpan[][] {
  const rows: NodeSpan[][] = [];
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    const row = rows.find((candidate) => candidate[candidate.length - 1].end <= span.start);
    if (row) row.push(span);
    else rows.push([span]);
  }
  return rows.length > 0 ? rows : [[]];
}

function fit(text: string, pixels: number): string {
  const characters = Math.floor(pixels / 6.5);
  if (characters <= 1) return "";
  return text.length <= characters ? text : `${text.slice(0, characters - 1)}…`;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
