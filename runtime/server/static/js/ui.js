// Small page helpers shared by the panels.

export const $ = (id) => document.getElementById(id);

export const title = (word) => word[0].toUpperCase() + word.slice(1);

// Show ``message`` in the error box ``id`` (a role="alert" region: screen readers announce it),
// or hide the box when ``message`` is empty.
export function setError(id, message = "") {
  const box = $(id);
  box.textContent = message;
  box.hidden = !message;
}
