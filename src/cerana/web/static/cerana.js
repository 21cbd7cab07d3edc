// Cerana web UI: the few things forms cannot do alone. Every page works
// without this file; it adds the markdown preview, "tick all" boxes,
// confirmations and live updates of an open case.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // -- confirmations ---------------------------------------------------------
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // -- tick all --------------------------------------------------------------
  document.addEventListener("change", function (event) {
    const master = event.target.closest("[data-check-all]");
    if (!master) return;
    const form = master.form;
    const boxes = form.querySelectorAll('input[type="checkbox"][name="' + master.dataset.checkAll + '"]');
    boxes.forEach(function (box) { box.checked = master.checked; });
  });

  // -- markdown preview ------------------------------------------------------
  document.addEventListener("click", function (event) {
    const mode = event.target.closest("[data-md-mode]");
    if (!mode) return;
    const editor = mode.closest("[data-md-editor]");
    const textarea = editor.querySelector("textarea");
    const preview = editor.querySelector(".md-preview");
    const previewing = mode.dataset.mdMode === "preview";
    editor.querySelectorAll("[data-md-mode]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b === mode));
    });
    textarea.hidden = previewing;
    preview.hidden = !previewing;
    if (!previewing) { textarea.focus(); return; }
    preview.textContent = "Rendering…";
    fetch("/markdown/preview", {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=utf-8", "X-THE-HIVE-XSRF-TOKEN": csrfToken() },
      body: textarea.value,
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error("preview failed (" + response.status + ")");
      return response.text();
    }).then(function (html) {
      // The server renders with the same sanitiser as the page itself.
      preview.innerHTML = html;
    }).catch(function (error) {
      preview.textContent = "Preview unavailable: " + error.message;
    });
  });

  // -- live updates ----------------------------------------------------------
  const liveUrl = document.body.dataset.live;
  if (!liveUrl || !window.EventSource) return;
  const notice = document.getElementById("live-notice");
  let timer = null;
  let changedBy = "";

  function say(text) {
    notice.textContent = text;
    notice.hidden = false;
  }

  function busy(region) {
    // Never replace what the user is typing in or has opened.
    const active = document.activeElement;
    if (active && active !== document.body && region.contains(active) && active.matches("input, textarea, select")) {
      return true;
    }
    return Array.prototype.some.call(region.querySelectorAll("input, textarea"), function (field) {
      if (field.type === "hidden" || field.type === "file") return false;
      if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
      return field.value !== field.defaultValue;
    });
  }

  // A popover or form the user opened stays open across a refresh.
  function openDetails(region) {
    return Array.prototype.map.call(region.querySelectorAll("details[open] > summary"), function (summary) {
      return summary.textContent.trim();
    });
  }

  function reopen(region, labels) {
    region.querySelectorAll("details > summary").forEach(function (summary) {
      if (labels.indexOf(summary.textContent.trim()) >= 0) summary.parentElement.open = true;
    });
  }

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Cerana-Live": "1" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        let skipped = false;
        document.querySelectorAll("[data-live-region]").forEach(function (region) {
          const replacement = fresh.querySelector('[data-live-region="' + region.dataset.liveRegion + '"]');
          if (!replacement) return;
          if (busy(region)) { skipped = true; return; }
          const opened = openDetails(region);
          region.innerHTML = replacement.innerHTML;
          reopen(region, opened);
        });
        document.title = fresh.title;
        const time = new Date().toLocaleTimeString();
        if (skipped) {
          say("Changed by " + changedBy + " at " + time + " while you were editing: reload the page to see everything.");
        } else {
          say("Updated live at " + time + " (change by " + changedBy + ").");
        }
      })
      .catch(function () { say("This case changed: reload the page to see it."); });
  }

  const source = new EventSource(liveUrl, { withCredentials: true });
  source.addEventListener("change", function (event) {
    try {
      const changes = JSON.parse(event.data);
      const users = Array.from(new Set(changes.map(function (c) { return c.user; })));
      changedBy = users.join(", ");
    } catch (error) {
      changedBy = "someone";
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();

// -- job statuses: poll while a shown job is waiting or running -------------
(function () {
  const POLL_MS = 2000;
  const ENDED = ["Success", "Failure", "Deleted"];
  const LABELS = { InProgress: "In progress" };

  function pending() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-job-status]"), function (badge) {
      return ENDED.indexOf(badge.dataset.jobStatus) < 0;
    });
  }

  function show(badge, status) {
    badge.dataset.jobStatus = status;
    badge.className = "jstatus jstatus-" + status.toLowerCase();
    badge.textContent = LABELS[status] || status;
  }

  function poll() {
    const badges = pending();
    if (!badges.length) return;
    if (document.hidden) { setTimeout(poll, POLL_MS); return; }
    const ids = Array.from(new Set(badges.map(function (b) { return b.dataset.jobId; })));
    const query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    fetch("/jobs/status?" + query, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (answer) {
        let reload = false;
        badges.forEach(function (badge) {
          const job = answer.jobs[badge.dataset.jobId];
          if (!job || job.status === badge.dataset.jobStatus) return;
          show(badge, job.status);
          const ended = document.querySelector('[data-job-end="' + badge.dataset.jobId + '"]');
          // The ISO time in UTC, shortened as the server writes dates.
          if (ended && job.endDate) ended.textContent = job.endDate.slice(0, 16).replace("T", " ");
          if (ENDED.indexOf(job.status) >= 0 && badge.hasAttribute("data-job-reload")) reload = true;
        });
        // A job page shows its report once the job ends.
        if (reload) { window.location.reload(); return; }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () { setTimeout(poll, POLL_MS * 5); });
  }

  setTimeout(poll, POLL_MS);
})();
