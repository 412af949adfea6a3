// The module's REST API: JSON in and out, session cookie auth. Any 401 outside the login
// means the session is gone: the app is told once (onExpired) and shows the login page.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export class Api {
  constructor() {
    this.onExpired = null;
  }

  async request(method, path, body, {expire = true} = {}) {
    const init = {method, credentials: 'same-origin', headers: {Accept: 'application/json'}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `the server cannot be reached (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (res.status === 401 && expire && this.onExpired) this.onExpired();
    if (!res.ok) {
      const detail = data && data.detail ? data.detail : `${res.status} ${res.statusText}`;
      throw new ApiError(res.status, detail);
    }
    return {status: res.status, data};
  }

  async get(path, opts) { return (await this.request('GET', path, undefined, opts)).data; }
  post(path, body, opts) { return this.request('POST', path, body, opts); }
  del(path, opts) { return this.request('DELETE', path, undefined, opts); }

  me() { return this.get('/api/auth/me', {expire: false}); }
  async login(username, password) {
    return (await this.post('/api/auth/login', {username, password}, {expire: false})).data;
  }
  logout() { return this.post('/api/auth/logout', {}, {expire: false}); }

  tasks(state, page, pageSize) {
    const q = new URLSearchParams({state});
    if (page) { q.set('page', page); q.set('pageSize', pageSize); }
    return this.get(`/api/taskqueue?${q}`);
  }
  task(id) { return this.get(`/api/taskqueue/${id}`); }
  deleteTask(id) { return this.del(`/api/taskqueue/${id}`); }
  create(kind, body) { return this.post(`/api/taskqueue/${kind}`, body); }
  pools() { return this.get('/api/pools'); }
  images(pool) { return this.get(`/api/pools/${encodeURIComponent(pool)}/images`); }
}
