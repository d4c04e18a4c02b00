// The admin page's only script: confirmations, "select all", the live event feed and the
// per-group chart. It reads the JSON Admin API with the session cookie (GET only) and draws
// the chart as inline SVG; it needs nothing from any other origin.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(name, attrs, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // An API error body is {"type", "message"}; anything else is described as it is.
  async function describeFailure(response) {
    try {
      const body = await response.json();
      if (body && body.message) return body.message;
    } catch (ignored) { /* not JSON */ }
    return "HTTP " + response.status;
  }

  // Follow the event stream; `onEvent(envelope)` for each event of the given types.
  function follow(url, types, onEvent, onStatus) {
    const source = new EventSource(url);
    const handle = (message) => {
      try { onEvent(JSON.parse(message.data)); } catch (error) { console.error(error); }
    };
    for (const type of types) source.addEventListener(type, handle);
    source.addEventListener("message", handle);
    source.addEventListener("open", () => onStatus && onStatus("live"));
    source.addEventListener("error", () =>
      onStatus && onStatus(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…"));
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  // --- confirmations and "select all" --------------------------------------------------

  document.addEventListener("click", (click) => {
    const button = click.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) click.preventDefault();
  });
  document.addEventListener("change", (change) => {
    const all = change.target.closest("[data-check-all]");
    if (!all) return;
    const table = all.closest("table");
    for (const box of table.querySelectorAll("tbody input[type=checkbox]")) box.checked = all.checked;
  });

  // --- live event feed ------------------------------------------------------------------

  function startFeed(table) {
    const status = document.querySelector("[data-feed-status]");
    const tbody = table.querySelector("tbody");
    const groupsUrl = table.getAttribute("data-groups-url");
    const types = (table.getAttribute("data-types") || "").split(" ").filter(Boolean);
    let after = table.getAttribute("data-after") || "0";
    const url = table.getAttribute("data-stream-url") + "?after=" + encodeURIComponent(after);
    const setStatus = (text) => {
      if (!status) return;
      status.textContent = text;
      status.setAttribute("data-state", text === "live" ? "live" : "down");
    };
    follow(url, types, (event) => {
      if (tbody.querySelector(`tr[data-sequence="${event.sequence}"]`)) return;
      const row = html("tr", { "data-sequence": event.sequence, "data-type": event.type, class: "fresh" });
      row.append(html("td", {}, String(event.sequence)));
      const when = html("td");
      when.append(html("time", { datetime: event.time }, event.time.replace("T", " ").slice(0, 19)));
      row.append(when);
      row.append(html("td", { class: "type" }, event.type));
      const subject = html("td");
      const code = html("code", {}, event.subject);
      if (event.type.startsWith("customer_group.")) {
        const link = html("a", { href: groupsUrl + encodeURIComponent(event.subject) });
        link.append(code);
        subject.append(link);
      } else {
        subject.append(code);
      }
      row.append(subject);
      const actor = html("td");
      actor.append(html("code", {}, event.actor || ""));
      row.append(actor);
      const data = html("td", { class: "data" });
      data.append(html("code", {}, JSON.stringify(event.data)));
      row.append(data);
      tbody.prepend(row);
      const empty = document.querySelector("[data-feed-empty]");
      if (empty) empty.remove();
      while (tbody.rows.length > 500) tbody.deleteRow(tbody.rows.length - 1);
    }, setStatus);
  }

  // --- per-group chart ------------------------------------------------------------------

  function bucketLabel(bucket, granularity) {
    const text = String(bucket).replace("T", " ");
    return granularity === "day" ? text.slice(0, 10) : text.slice(5, 16);
  }

  function niceMax(value) {
    if (value <= 4) return Math.max(1, value);
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * magnitude >= value) return step * magnitude;
    }
    return value;
  }

  function drawChart(area, series, granularity) {
    const width = Math.max(320, area.clientWidth || 640);
    const height = 280;
    const left = 44, right = 12, top = 12;
    const membersBottom = 150, flowsTop = 178, flowsBottom = 250;
    const plotWidth = width - left - right;
    const count = series.length;
    const x = (i) => left + (count === 1 ? plotWidth / 2 : (i * plotWidth) / (count - 1));
    const slot = plotWidth / Math.max(count, 1);
    const membersMax = niceMax(Math.max(...series.map((p) => p.members)));
    const flowMax = niceMax(Math.max(...series.map((p) => Math.max(p.joins, p.leaves))));
    const yMembers = (v) => membersBottom - ((membersBottom - top) * v) / membersMax;
    const flowMid = (flowsTop + flowsBottom) / 2;
    const yFlow = (v) => ((flowsBottom - flowsTop) / 2) * (v / flowMax);

    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img",
      "aria-label": "Members, joins and leaves over time", "data-points": count,
    });
    // grid and axes
    const ticks = Number.isInteger(membersMax / 2) ? [0, membersMax / 2, membersMax] : [0, membersMax];
    for (const v of ticks) {
      svg.append(el("line", { x1: left, x2: width - right, y1: yMembers(v), y2: yMembers(v), class: "grid" }));
      svg.append(el("text", { x: left - 6, y: yMembers(v) + 4, class: "axis", "text-anchor": "end" },
        String(v)));
    }
    svg.append(el("line", { x1: left, x2: width - right, y1: flowMid, y2: flowMid, class: "grid" }));
    svg.append(el("text", { x: left - 6, y: flowsTop + 4, class: "axis", "text-anchor": "end" }, "+" + flowMax));
    svg.append(el("text", { x: left - 6, y: flowsBottom + 4, class: "axis", "text-anchor": "end" }, "−" + flowMax));
    // joins (up) and leaves (down)
    const barWidth = Math.max(2, Math.min(18, slot * 0.35));
    series.forEach((p, i) => {
      if (p.joins > 0) {
        const h = yFlow(p.joins);
        const bar = el("rect", { x: x(i) - barWidth, y: flowMid - h, width: barWidth, height: h, class: "bar joins" });
        bar.append(el("title", {}, `${bucketLabel(p.bucket, granularity)}: ${p.joins} joined`));
        svg.append(bar);
      }
      if (p.leaves > 0) {
        const h = yFlow(p.leaves);
        const bar = el("rect", { x: x(i), y: flowMid, width: barWidth, height: h, class: "bar leaves" });
        bar.append(el("title", {}, `${bucketLabel(p.bucket, granularity)}: ${p.leaves} left`));
        svg.append(bar);
      }
    });
    // members line and points
    const points = series.map((p, i) => `${x(i)},${yMembers(p.members)}`).join(" ");
    svg.append(el("polyline", { points, class: "line members" }));
    series.forEach((p, i) => {
      const dot = el("circle", {
        cx: x(i), cy: yMembers(p.members), r: count > 60 ? 2 : 3.5, class: "point members",
        "data-bucket": p.bucket, "data-members": p.members, "data-joins": p.joins, "data-leaves": p.leaves,
      });
      dot.append(el("title", {}, `${bucketLabel(p.bucket, granularity)}: ${p.members} members, +${p.joins} / −${p.leaves}`));
      svg.append(dot);
    });
    // time labels: first, middle, last
    const labelled = new Set([0, Math.floor((count - 1) / 2), count - 1]);
    for (const i of labelled) {
      const anchor = count === 1 ? "middle" : i === 0 ? "start" : i === count - 1 ? "end" : "middle";
      svg.append(el("text", { x: x(i), y: height - 6, class: "axis", "text-anchor": anchor },
        bucketLabel(series[i].bucket, granularity)));
    }
    area.replaceChildren(svg);
  }

  function startChart(section) {
    const area = section.querySelector("[data-chart-area]");
    const status = section.querySelector("[data-chart-status]");
    const select = section.querySelector("[data-chart-granularity]");
    const url = section.getAttribute("data-stats-url");
    const groupId = section.getAttribute("data-group-id");
    let loading = null;

    async function load() {
      const granularity = select.value;
      let response;
      try {
        response = await fetch(url + "?granularity=" + granularity, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
      } catch (error) {
        status.textContent = "Stats unavailable: the server cannot be reached.";
        section.setAttribute("data-chart-state", "unavailable");
        return;
      }
      if (!response.ok) {
        status.textContent = "Stats unavailable: " + (await describeFailure(response));
        section.setAttribute("data-chart-state", "unavailable");
        area.replaceChildren();
        return;
      }
      const body = await response.json();
      const stats = body.stats || {};
      const series = stats.series || [];
      if (!series.length) {
        status.textContent = "No membership change yet.";
        section.setAttribute("data-chart-state", "empty");
        area.replaceChildren();
        return;
      }
      const members = stats.member_count === 1 ? "1 member" : `${stats.member_count} members`;
      const span = `${series.length} ${granularity === "day" ? "day" : "hour"}${series.length === 1 ? "" : "s"}`;
      status.textContent = `${members} now; the last ${span}.`;
      drawChart(area, series, granularity);
      section.setAttribute("data-chart-state", "drawn");
    }

    function reload() {  // several events in a burst: one request
      if (loading) clearTimeout(loading);
      loading = setTimeout(() => { loading = null; load(); }, 400);
    }

    select.addEventListener("change", load);
    load();
    const streamTypes = ["customer_group.customer_added", "customer_group.customer_removed"];
    const streamUrl = "/admin/events/stream?" + streamTypes.map((t) => "type=" + encodeURIComponent(t)).join("&");
    follow(streamUrl, streamTypes, (event) => {
      if (event.subject === groupId) reload();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const feed = document.getElementById("feed");
    if (feed) startFeed(feed);
    const chart = document.getElementById("chart");
    if (chart) startChart(chart);
  });
})();
