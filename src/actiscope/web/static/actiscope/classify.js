// Drag and drop onto the upload form: the dropped files become the form's files and it is sent.
(function () {
  const form = document.getElementById("upload");
  const input = document.getElementById("file");
  if (!form || !input) return;
  ["dragenter", "dragover"].forEach((e) => form.addEventListener(e, (ev) => { ev.preventDefault(); form.classList.add("over"); }));
  ["dragleave", "drop"].forEach((e) => form.addEventListener(e, (ev) => { ev.preventDefault(); form.classList.remove("over"); }));
  form.addEventListener("drop", (ev) => {
    if (ev.dataTransfer && ev.dataTransfer.files.length) {
      input.files = ev.dataTransfer.files;
      form.submit();
    }
  });
})();
