// Case template editor: moves task rows in place. Without this file the
// move buttons post the form and the server sends it back rearranged; with
// it, rows swap at once and their hidden order fields are rewritten, so
// the order is saved with the rest of the form.
"use strict";

(function () {
  const list = document.querySelector("[data-task-rows]");
  const status = document.getElementById("task-move-status");
  if (!list) return;

  function renumber() {
    list.querySelectorAll("[data-task-row]").forEach(function (row, position) {
      const number = String(position + 1);
      row.querySelector("[data-task-order]").value = String(position);
      row.querySelector("[data-task-number]").textContent = number;
      row.querySelector("[role=group]").setAttribute("aria-label", "Order of task " + number);
      row.querySelector('[data-move="up"]').setAttribute("aria-label", "Move task " + number + " up");
      row.querySelector('[data-move="down"]').setAttribute("aria-label", "Move task " + number + " down");
      row.querySelector("button.danger").setAttribute("aria-label", "Remove task " + number);
    });
  }

  list.addEventListener("click", function (event) {
    const button = event.target.closest("[data-move]");
    if (!button) return;
    event.preventDefault();
    const row = button.closest("[data-task-row]");
    const up = button.dataset.move === "up";
    const other = up ? row.previousElementSibling : row.nextElementSibling;
    if (!other) {
      status.textContent = "This task is already " + (up ? "first." : "last.");
      return;
    }
    list.insertBefore(up ? row : other, up ? other : row);
    renumber();
    button.focus();
    const position = Array.prototype.indexOf.call(list.children, row) + 1;
    status.textContent = "Task moved to position " + position + ".";
  });
})();
