// The dashboard's only script (the CSP allows scripts from this origin alone, and no inline ones).
// Everything works without it; it adds the copy buttons and makes the one-time reveal dialog modal.
"use strict";

function showRevealModal() {
  for (const dialog of document.querySelectorAll("dialog[data-modal][open]")) {
    dialog.close();
    dialog.showModal();
  }
}

function enableCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.status);
    if (!field) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied to the clipboard.";
      } catch (_error) {
        field.focus();
        field.select();
        if (status) status.textContent = "Copying is not allowed here: the text is selected, press Ctrl+C (or ⌘C).";
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  enableCopyButtons();
  showRevealModal();
});
