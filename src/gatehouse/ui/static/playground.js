// The playground page: chat streamed token by token, and RAG answers with their
// citations. Every request carries the session's CSRF token; every call runs on
// the server as the logged-in caller. No inline script: the page's CSP forbids it.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  // Why a request failed, from an OpenAI-shaped error body when there is one.
  async function failure(response) {
    if (response.redirected || (response.headers.get("content-type") || "").startsWith("text/html")) {
      return "Your session has ended: reload the page and log in again.";
    }
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON */ }
    return "The request failed (" + response.status + ").";
  }

  function post(url, body, signal) {
    return fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: signal,
    });
  }

  // Calls onEvent with each server-sent event's parsed data, as it arrives.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message || "The stream failed.");
        onEvent(event);
      }
    }
  }

  // -- chat --------------------------------------------------------------------

  function setUpChat() {
    const form = $("chat-form");
    if (!form) return;
    const log = $("chat-log");
    const input = $("chat-input");
    const send = $("chat-send");
    const stop = $("chat-stop");
    const status = $("chat-status");
    let history = [];
    let running = null;

    function addTurn(role, text) {
      const item = document.createElement("li");
      item.className = "pg-turn pg-" + role;
      const who = document.createElement("span");
      who.className = "pg-who";
      who.textContent = role === "user" ? "You" : "Model";
      const body = document.createElement("div");
      body.className = "pg-text";
      body.textContent = text;
      item.append(who, body);
      log.append(item);
      return body;
    }

    function number(id) {
      const raw = $(id).value.trim();
      return raw === "" ? null : Number(raw);
    }

    async function submit() {
      const text = input.value.trim();
      if (!text || running) return;
      history.push({ role: "user", content: text });
      addTurn("user", text);
      input.value = "";
      const out = addTurn("assistant", "");
      out.setAttribute("aria-busy", "true");
      running = new AbortController();
      send.disabled = true;
      stop.disabled = false;
      status.textContent = "Waiting for the model…";
      const body = {
        model: $("chat-model").value,
        messages: history,
        system: $("chat-system").value,
        temperature: number("chat-temperature"),
        max_tokens: number("chat-max-tokens"),
      };
      let answer = "";
      try {
        const response = await post("/ui/playground/chat", body, running.signal);
        if (!response.ok || response.redirected) throw new Error(await failure(response));
        let usage = null;
        if ((response.headers.get("content-type") || "").startsWith("application/json")) {
          const whole = await response.json(); // a cached answer comes whole
          answer = whole.choices[0].message.content || "";
          out.textContent = answer;
          usage = whole.usage;
        } else {
          status.textContent = "Streaming…";
          await readEvents(response, (chunk) => {
            if (chunk.usage) usage = chunk.usage;
            for (const choice of chunk.choices || []) {
              const piece = choice.delta && choice.delta.content;
              if (piece) {
                answer += piece;
                out.textContent = answer;
              }
            }
          });
        }
        status.textContent = usage
          ? "Done: " + usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion tokens."
          : "Done.";
      } catch (error) {
        status.textContent = error.name === "AbortError" ? "Stopped." : "";
        if (error.name !== "AbortError") {
          const note = document.createElement("p");
          note.className = "error";
          note.setAttribute("role", "alert");
          note.textContent = error.message;
          out.append(note);
        }
      } finally {
        if (answer) history.push({ role: "assistant", content: answer });
        else history.pop(); // nothing came back: the question may be asked again
        out.removeAttribute("aria-busy");
        running = null;
        send.disabled = false;
        stop.disabled = true;
      }
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit();
      }
    });
    stop.addEventListener("click", () => { if (running) running.abort(); });
    $("chat-clear").addEventListener("click", () => {
      if (running) running.abort();
      history = [];
      log.replaceChildren();
      status.textContent = "";
    });
  }

  // -- RAG ---------------------------------------------------------------------

  function setUpRag() {
    const form = $("rag-form");
    if (!form) return;
    const select = $("rag-collection");
    const collectionUrl = () => "/ui/playground/collections/" + encodeURIComponent(select.value);
    let sources = new Map();

    const create = $("rag-new");
    if (create) {
      create.addEventListener("submit", async (event) => {
        event.preventDefault();
        const status = $("rag-upload-status");
        const name = $("rag-new-name").value.trim();
        const embedding = $("rag-new-embedding");
        const body = { name: name };
        if (embedding && embedding.value) body.embedding_model = embedding.value;
        const response = await post("/ui/playground/collections", body);
        if (!response.ok || response.redirected) {
          status.textContent = await failure(response);
          return;
        }
        const none = $("rag-none");
        if (none) none.remove();
        const option = document.createElement("option");
        option.value = option.textContent = name;
        select.append(option);
        select.value = name;
        $("rag-new-name").value = "";
        status.textContent = "Created collection " + name + ".";
      });
    }

    const upload = $("rag-upload");
    if (upload) {
      upload.addEventListener("submit", async (event) => {
        event.preventDefault();
        const files = Array.from($("rag-files").files);
        const status = $("rag-upload-status");
        const bar = $("rag-progress");
        if (!select.value) { status.textContent = "Create or pick a collection first."; return; }
        if (!files.length) { status.textContent = "Choose one or more files."; return; }
        const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
        let sent = 0;
        let added = 0;
        for (const file of files) {
          status.textContent = "Uploading " + file.name + "…";
          try {
            const result = await sendFile(collectionUrl(), file, (loaded) => {
              bar.value = Math.round(((sent + loaded) / total) * 100);
            });
            added += result.added;
          } catch (error) {
            status.textContent = file.name + ": " + error.message;
            return;
          }
          sent += file.size;
        }
        bar.value = 100;
        status.textContent = "Uploaded " + files.length + " file(s); " + added + " document(s) added.";
      });
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = $("rag-status");
      const answer = $("rag-answer");
      const citations = $("rag-citations");
      const query = $("rag-question").value.trim();
      if (!select.value) { status.textContent = "Pick a collection first."; return; }
      if (!query) return;
      answer.textContent = "";
      citations.replaceChildren();
      $("rag-chunk").hidden = true;
      sources = new Map();
      $("rag-ask").disabled = true;
      status.textContent = "Searching…";
      try {
        const response = await post(collectionUrl() + "/answer", { query: query });
        if (!response.ok || response.redirected) throw new Error(await failure(response));
        let text = "";
        await readEvents(response, (event) => {
          if (event.type === "results") {
            for (const hit of event.results || []) sources.set(hit.chunk_id, hit);
            status.textContent = "Answering from " + sources.size + " passage(s)…";
          } else if (event.type === "delta" && event.content) {
            text += event.content;
            answer.textContent = text;
          } else if (event.type === "done") {
            if (event.answer) answer.textContent = event.answer;
            showCitations(event.citations || []);
          }
        });
        status.textContent = "Done.";
      } catch (error) {
        status.textContent = error.message;
      } finally {
        $("rag-ask").disabled = false;
      }
    });

    function showCitations(list) {
      const citations = $("rag-citations");
      if (!list.length) {
        const none = document.createElement("li");
        none.textContent = "The answer cites no passage.";
        citations.append(none);
        return;
      }
      for (const citation of list) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "pg-citation";
        button.textContent = "[" + citation.index + "] " + citation.document_id;
        button.setAttribute("aria-controls", "rag-chunk");
        button.addEventListener("click", () => showChunk(citation));
        item.append(button);
        citations.append(item);
      }
    }

    function showChunk(citation) {
      const hit = sources.get(citation.chunk_id);
      const panel = $("rag-chunk");
      $("rag-chunk-title").textContent = "[" + citation.index + "] " + citation.chunk_id;
      $("rag-chunk-text").textContent = hit ? hit.text : "(this passage is no longer in the results)";
      panel.hidden = false;
      panel.focus();
    }
  }

  // One file as the raw request body, with upload progress (fetch cannot report it).
  function sendFile(url, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url + "/files?name=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("x-csrf-token", csrf());
      xhr.setRequestHeader("content-type", "application/octet-stream");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
        else reject(new Error(body && body.error ? body.error.message : "upload failed (" + xhr.status + ")"));
      });
      xhr.addEventListener("error", () => reject(new Error("the upload was interrupted")));
      xhr.send(file);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpChat();
    setUpRag();
  });
})();
