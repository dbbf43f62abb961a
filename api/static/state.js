// Who is signed in, to which workspace, and the conversation open: kept in the browser.
export const state = {
  token: localStorage.getItem("docuchat.token"),
  tenant: localStorage.getItem("docuchat.tenant"),
  email: localStorage.getItem("docuchat.email"),
  session: localStorage.getItem("docuchat.session"),
  role: null,
  userId: null,
};
