'use strict';
// The audit changelist's autocomplete filters: choosing a value reloads the list filtered by it.
{
    const $ = django.jQuery;
    $(function() {
        $('select.audit-autocomplete-filter').on('change', function() {
            const url = new URL(this.dataset.clearQuery || '?', window.location.href);
            if (this.value) {
                url.searchParams.set(this.dataset.parameter, this.value);
            }
            window.location.href = url.href;
        });
    });
}
