// One page load at a time: fetch, render, report busy/ready, show errors. Answers to a
// superseded request (fast clicking, auto-refresh) are ignored, so the newest view wins.
import { $, markReady, setBusy, showError } from './dom.js';

export function latestOnly(fetchData, render) {
  let generation = 0;
  return async function load() {
    const mine = ++generation;
    setBusy(true);
    try {
      const data = await fetchData();
      if (mine !== generation) return;
      render(data);
      markReady();
    } catch (error) {
      if (mine !== generation) return;
      showError($('#message'), error);
      markReady('error');
    } finally {
      if (mine === generation) setBusy(false);
    }
  };
}
