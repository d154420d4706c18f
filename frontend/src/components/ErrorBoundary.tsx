// A render error in one page shows an alert in that page's place instead of blanking the whole application.

import { Component, type ReactNode } from 'react';
import i18n from '../i18n';

export class ErrorBoundary extends Component<{ children: ReactNode; resetKey?: string }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  componentDidUpdate(prev: { resetKey?: string }) {
    if (prev.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: null });
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <section className="page">
        <h1>{i18n.t('error.generic')}</h1>
        <div className="alert alert--error" role="alert">
          <p className="alert__detail">{this.state.error.message}</p>
        </div>
        <button type="button" className="button" onClick={() => this.setState({ error: null })}>
          {i18n.t('common.retry')}
        </button>
      </section>
    );
  }
}
