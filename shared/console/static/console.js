// The console's one script (served from the app; the Content Security Policy allows no other):
// the recipient picker, a combobox that searches people, channels and chats as you type.
// Keyboard: type to search, Down/Up to move through the matches, Enter to add one, Escape to
// close; each chosen recipient has a Remove button.
"use strict";

function pickerField(picker) {
  return picker.dataset.picker === "recipients" ? "recipient" : "fallback";
}

function addChip(picker, label, value) {
  const list = picker.querySelector(".chips");
  for (const input of list.querySelectorAll("input[type=hidden]")) {
    if (input.value === value) return false;
  }
  const item = document.createElement("li");
  const text = document.createElement("span");
  text.textContent = label;
  const input = document.createElement("input");
  input.type = "hidden";
  input.name = pickerField(picker);
  input.value = value;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.setAttribute("aria-label", "Remove " + label);
  remove.textContent = "×";
  item.append(text, input, remove);
  list.append(item);
  return true;
}

function setupPicker(picker) {
  const search = picker.querySelector("input[type=search]");
  const options = picker.querySelector(".options");
  const status = picker.querySelector("[role=status]");
  let results = [];
  let active = -1;
  let timer = null;
  let asked = 0;

  function close() {
    options.hidden = true;
    search.setAttribute("aria-expanded", "false");
    search.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function show() {
    options.replaceChildren();
    results.forEach((result, index) => {
      const option = document.createElement("li");
      option.id = picker.dataset.picker + "-option-" + index;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", index === active ? "true" : "false");
      const label = document.createElement("span");
      label.textContent = result.label;
      const detail = document.createElement("span");
      detail.className = "hint";
      detail.textContent = " " + result.detail;
      option.append(label, detail);
      option.addEventListener("mousedown", (event) => {
        event.preventDefault();
        choose(index);
      });
      options.append(option);
    });
    options.hidden = results.length === 0;
    search.setAttribute("aria-expanded", results.length ? "true" : "false");
    if (active >= 0) search.setAttribute("aria-activedescendant", picker.dataset.picker + "-option-" + active);
    else search.removeAttribute("aria-activedescendant");
  }

  function choose(index) {
    const result = results[index];
    if (!result) return;
    const added = addChip(picker, result.label + " (" + result.detail + ")", JSON.stringify(result.recipient));
    status.textContent = added ? result.label + " added." : result.label + " is already chosen.";
    search.value = "";
    results = [];
    close();
  }

  async function find(text) {
    const mine = ++asked;
    try {
      const answer = await fetch("/api/console/directory?q=" + encodeURIComponent(text), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const body = await answer.json();
      if (mine !== asked) return;
      results = body.results || [];
      active = results.length ? 0 : -1;
      status.textContent = results.length
        ? (results.length === 1 ? "1 match." : results.length + " matches.") + (body.note ? " " + body.note : "")
        : "No match." + (body.note ? " " + body.note : "");
      show();
    } catch (error) {
      if (mine === asked) status.textContent = "The search failed: " + error;
    }
  }

  search.addEventListener("input", () => {
    clearTimeout(timer);
    const text = search.value.trim();
    if (text.length < 2) {
      results = [];
      close();
      return;
    }
    timer = setTimeout(() => find(text), 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && results.length) {
      active = (active + 1) % results.length;
      show();
      event.preventDefault();
    } else if (event.key === "ArrowUp" && results.length) {
      active = (active - 1 + results.length) % results.length;
      show();
      event.preventDefault();
    } else if (event.key === "Enter") {
      event.preventDefault(); // never submits the form from the search box
      if (active >= 0) choose(active);
    } else if (event.key === "Escape") {
      close();
    }
  });
  search.addEventListener("blur", () => setTimeout(close, 150));
  picker.addEventListener("click", (event) => {
    const remove = event.target.closest("button.remove");
    if (remove) {
      const label = remove.getAttribute("aria-label").replace(/^Remove /, "");
      remove.closest("li").remove();
      status.textContent = label + " removed.";
      search.focus();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-picker]").forEach(setupPicker);
});
